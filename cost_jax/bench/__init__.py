"""Speed measurements that print numbers: `model` (the networks' forward pass and train
step, side by side with PyTorch), `data` (the input pipeline against raw JPEG decoding)
and `report` (a markdown table and the performance targets from a `model` JSON report).
"""
