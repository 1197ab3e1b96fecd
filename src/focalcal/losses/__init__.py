"""focalcal.losses"""
