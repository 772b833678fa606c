"""What the integration scripts that train compiled binaries share: run a
command or fail the test, train under mpirun and read the logged losses,
compare two runs' losses, read the safetensors files a run exports."""
import json
import os
import re
import struct
import subprocess
import sys


def read_safetensors(folder):
    """name -> (dtype, shape, raw bytes), over every file of `folder`."""
    tensors = {}
    for file in sorted(os.listdir(folder)):
        if not file.endswith(".safetensors"):
            continue
        blob = open(os.path.join(folder, file), "rb").read()
        length = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + length])
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            tensors[name] = (entry["dtype"], entry["shape"],
                             blob[8 + length + begin:8 + length + end])
    return tensors


def as_tensor(entry):
    """An F32 entry of read_safetensors as a torch tensor."""
    import torch  # only the scripts that compare tensors need it

    dtype, shape, data = entry
    assert dtype == "F32", dtype
    return torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape)


def model_options(argv):
    """Splits leading `--set FIELD=JSON` and `--import-option OPT` pairs off
    `argv`: (config fields to set, laer-import options, the rest)."""
    fields, import_options = {}, []
    while argv and argv[0] in ("--set", "--import-option"):
        if argv[0] == "--set":
            name, _, value = argv[1].partition("=")
            fields[name] = json.loads(value)
        else:
            import_options.append(argv[1])
        argv = argv[2:]
    return fields, import_options, argv


class TrainRuns:
    """`name` prefixes PASS/FAIL lines; `mpirun` is the launcher's argv."""

    def __init__(self, name, mpirun, data, suffix=".py", steps=20,
                 batch=8, sequence=64):
        self.name, self.mpirun, self.data = name, mpirun, data
        self.suffix, self.steps = suffix, steps
        self.batch, self.sequence = batch, sequence

    def fail(self, message):
        print("%s: FAIL: %s" % (self.name, message))
        sys.exit(1)

    def run(self, command, timeout=240):
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            self.fail("%s exited %d:\n%s%s"
                      % (" ".join(command), done.returncode, done.stdout,
                         done.stderr))
        return done.stdout

    def train_command(self, binary, ranks, extra=()):
        """Same seed and data every time; laer+ re-plans every step."""
        return self.mpirun + [
            "--timeout", "200", "-np", str(ranks), binary, *extra,
            "--data", self.data, "--suffix", self.suffix,
            "--steps", str(self.steps), "--log-every", "1",
            "--batch", str(self.batch), "--sequence", str(self.sequence),
            "--planner", "laer+", "--replan-every", "1", "--no-progress"]

    def losses(self, binary, ranks, extra=()):
        out = self.run(self.train_command(binary, ranks, extra))
        found = [float(m.group(2)) for m in
                 re.finditer(r"^step +(\d+) +loss +([0-9.]+)", out, re.M)]
        if len(found) != self.steps:
            self.fail("expected %d losses from %s on %d ranks, got:\n%s"
                      % (self.steps, binary, ranks, out))
        return found

    def compare(self, what, a, b, tolerance=1e-4):
        worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
        print("%-34s max relative difference %.2e" % (what, worst))
        if worst > tolerance:
            self.fail("%s: losses differ by %.2e relative\n%s\n%s"
                      % (what, worst, a, b))

    def expect_falling(self, losses):
        """The mean of the first 10 steps beats that of the last 10 by 0.1."""
        first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
        print("mean loss, steps 0-9: %.4f, last 10 steps: %.4f"
              % (first, last))
        if not last < first - 0.1:
            self.fail("the loss did not fall")
