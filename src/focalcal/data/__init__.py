"""focalcal.data"""
