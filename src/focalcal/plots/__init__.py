"""focalcal.plots"""
