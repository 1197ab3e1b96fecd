"""focalcal.metrics"""
