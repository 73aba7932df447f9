"""INT8 calibration: calibration data, calibrators, Q/DQ placement, TensorRT calibration cache."""
