"""focalcal.models"""
