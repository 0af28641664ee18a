#!/usr/bin/env python3
"""The host side of tests/usb/: boot the QEMU guest (TCG), copy its serial
console to RIG/console.log, plug and unplug QEMU's usb-storage through QMP
when the guest asks (lines "@@QMP plug-stick" / "@@QMP unplug-stick"),
collect the guest's "@@RESULT" lines, print one line per scenario and a last
line "N passed, M failed". Exit status 1 if anything failed or the guest did
not finish."""

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

SCENARIOS = 6


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Qmp:
    """A minimal QMP client over the monitor's Unix socket."""

    def __init__(self, path, deadline=30):
        end = time.time() + deadline
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.2)
        self.file = self.sock.makefile("rwb")
        self._read()  # the greeting
        self.command("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise RuntimeError("QMP closed")
        return json.loads(line)

    def command(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"QMP {name}: {reply['error'].get('desc')}")
            # an asynchronous event: skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rig", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()
    rig, root, binary = (os.path.abspath(p) for p in (args.rig, args.root, args.bin))

    out = os.path.join(rig, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    stick = os.path.join(out, "stick.img")
    shutil.copyfile(os.path.join(rig, "media", "stick.img"), stick)
    stick_before = sha256(stick)
    qmp_path = os.path.join(rig, "qmp.sock")
    if os.path.exists(qmp_path):
        os.unlink(qmp_path)

    cmd = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "2048", "-smp", "2",
        "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", os.path.join(rig, "guest", "vmlinuz"),
        "-initrd", os.path.join(rig, "guest", "initramfs.gz"),
        "-append", f"console=ttyS0 quiet loglevel=3 panic=-1 rig_root={root} rig_bin={binary}",
        "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={out},mount_tag=out,security_model=none,multidevs=remap",
        "-device", "qemu-xhci,id=xhci",
        "-drive", f"if=none,id=stick,format=raw,file={stick}",
        "-qmp", f"unix:{qmp_path},server=on,wait=off",
    ]
    started = time.time()
    console = open(os.path.join(rig, "console.log"), "wb")
    vm = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(args.timeout, vm.kill)
    timer.start()
    results = {}
    exit_seen = None
    qmp = None
    try:
        for raw in vm.stdout:
            console.write(raw)
            console.flush()
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("@@QMP "):
                what = line.split()[1]
                try:
                    if qmp is None:
                        qmp = Qmp(qmp_path)
                    if what == "plug-stick":
                        qmp.command("device_add", driver="usb-storage", drive="stick",
                                    bus="xhci.0", id="stick0")
                    elif what == "unplug-stick":
                        qmp.command("device_del", id="stick0")
                except Exception as e:  # reported as the guest's scenario fails
                    print(f"usb-rig: QMP {what} failed: {e}", file=sys.stderr)
            elif line.startswith("@@RESULT "):
                # @@RESULT <n> <ok|FAIL> <name>: <detail>
                _, n, verdict, rest = line.split(" ", 3)
                results[int(n)] = (verdict == "ok", rest)
                print(f"{'ok  ' if verdict == 'ok' else 'FAIL'} scenario {n}: {rest}", flush=True)
            elif line.startswith("@@RIG-EXIT"):
                exit_seen = line
            elif line.startswith("@@LOG "):
                print(f"usb-rig: {line[6:]}", file=sys.stderr, flush=True)
    finally:
        vm.wait()
        timer.cancel()
        console.close()
    elapsed = time.time() - started

    # Scenario 5 also holds on the host: QEMU's stick is byte for byte untouched.
    if 5 in results and sha256(stick) != stick_before:
        results[5] = (False, "the stick no profile matches was modified")
        print("FAIL scenario 5: the stick no profile matches was modified", flush=True)
    for n in range(1, SCENARIOS + 1):
        if n not in results:
            results[n] = (False, "did not run")
            print(f"FAIL scenario {n}: did not run (see {rig}/console.log)", flush=True)
    if exit_seen is None:
        print(f"usb-rig: the guest did not finish (see {rig}/console.log)", file=sys.stderr)
    passed = sum(1 for ok, _ in results.values() if ok)
    failed = len(results) - passed
    print(f"usb-rig: guest ran {elapsed:.0f} s; logs in {out}", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and exit_seen is not None else 1)


if __name__ == "__main__":
    main()
