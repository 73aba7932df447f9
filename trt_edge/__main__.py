"""`python -m trt_edge` is the same as the `trt-edge` console script."""

from trt_edge.cli import main

if __name__ == "__main__":
    main()
