"""
γ's effect on the focal loss
============================

x
"""
print(1)
