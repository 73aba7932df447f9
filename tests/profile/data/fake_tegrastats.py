"""A stand-in for `tegrastats` on machines that are not Jetsons: prints tegrastats lines at an interval.

Invoked exactly as the sampler invokes tegrastats (`CMD --interval MS`). The lines are the verbatim
Xavier NX JetPack 5.1.2 format of the facts file (§7.1) with the rail values stepped per line, and
every fifth line is garbage, so the sampler's tolerance is exercised against a real pipe.
`--fail` exits at once with tegrastats' permission message, like an unprivileged run.
"""

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--interval", type=int, default=1000)
parser.add_argument("--fail", action="store_true")
parser.add_argument("--count", type=int, default=0, help="stop after this many lines (0: run until killed)")
args = parser.parse_args()
if args.fail:
    print("tegrastats: Error: could not open /sys/kernel/debug/... Permission denied", file=sys.stderr)
    sys.exit(1)
LINE = ("{ts} RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) CPU [23%@1397,17%@1192,16%@1190,"
        "13%@1190,23%@1190,10%@1190] EMC_FREQ 2%@204 GR3D_FREQ {gpu}%@[114] VIC_FREQ 115 APE 150 AUX@45C "
        "CPU@46.5C thermal@45.6C AO@45C GPU@45.5C PMIC@50C VDD_IN {vin}mW/2846mW VDD_CPU_GPU_CV {cg}mW/670mW "
        "VDD_SOC 650mW/711mW")
i = 0
while args.count == 0 or i < args.count:
    if i % 5 == 4:
        print("this line is not tegrastats output", flush=True)
    else:
        ts = time.strftime("%m-%d-%Y %H:%M:%S")
        print(LINE.format(ts=ts, gpu=i % 100, vin=3000 + 10 * (i % 10), cg=600 + 10 * (i % 10)), flush=True)
    i += 1
    time.sleep(args.interval / 1000)
