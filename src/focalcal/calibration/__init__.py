"""focalcal.calibration"""
