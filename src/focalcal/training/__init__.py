"""focalcal.training"""
