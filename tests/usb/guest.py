#!/usr/bin/env python3
"""The guest side of tests/usb/ (run by tests/usb/init, chrooted into the
host's files): a ledger process and `custos dock run` on loopback, storage
on the guest's tmpfs (/run/rig), udevd for hotplug, and the scenarios of issue 9 against
real USB devices: simulated recorders (custos-recorder-sim, configfs gadgets
on dummy_hcd) and QEMU's usb-storage (plugged through QMP by the host).

Prints "@@RESULT <n> <ok|FAIL> <name>: <detail>" per scenario; the host
(tests/usb/rig.py) reports them. Every check reads what the dock did from
the ledger's entries, its slot status, its log, and the recorders' volumes.
"""

import argparse
import base64
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.request

PASSWORD = "s3cret-dock"
LEDGER = "http://127.0.0.1:8700"
STATUS = "http://127.0.0.1:8710/status"
SITE = "/run/rig/site"


def say(line):
    print(line, flush=True)


class Fail(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Fail(why)


def wait_for(what, fn, timeout, every=0.5):
    """Poll fn() every `every` s until it returns something true; Fail after timeout."""
    end = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > end:
            raise Fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def http_json(url, token=None, lines=False):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read().decode()
    if lines:
        return [json.loads(l) for l in body.splitlines() if l.strip()]
    return json.loads(body)


def fat_files(image):
    """Footage files left in a FAT image (mtools; no mounting)."""
    r = subprocess.run(["mdir", "-i", image, "-/", "-b", "::/DCIM"],
                       capture_output=True, text=True)
    return sorted(os.path.basename(l.strip()) for l in r.stdout.splitlines()
                  if l.strip().upper().endswith(".MP4"))


class Recorder:
    """One custos-recorder-sim process: a simulated recorder on a UDC."""

    def __init__(self, rig, name, serial, officer, udc, password=PASSWORD, skew=0):
        self.rig, self.serial, self.officer = rig, serial, officer
        self.image = f"/run/rig/{name}.img"
        shutil.copyfile(f"{rig.root}/target/usb-rig/media/{name}.img", self.image)
        self.clips = fat_files(self.image)
        self.log = f"{rig.out}/sim-{name}.log"
        ready = f"/run/rig/{name}.ready"
        if os.path.exists(ready):
            os.unlink(ready)
        env = dict(os.environ, CUSTOS_SIM_PASSWORD=password)
        self.proc = subprocess.Popen(
            [f"{rig.bin}/custos-recorder-sim", "--profile",
             f"{rig.root}/firmware-profiles/simulated.toml", "--image", self.image,
             "--serial", serial, "--officer-id", officer, "--udc", udc,
             "--clock-skew-secs", str(skew), "--ready-file", ready],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        rig.recorders.append(self)
        wait_for(f"recorder {serial} on {udc}", lambda: os.path.exists(ready) or self.proc.poll() is not None, 60)
        check(self.proc.poll() is None, f"custos-recorder-sim {serial} exited: {self.log_text()[-300:]}")

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def unplug(self):
        self.proc.send_signal(signal.SIGUSR1)

    def plug(self):
        self.proc.send_signal(signal.SIGUSR2)

    def remove(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def remaining(self):
        return fat_files(self.image)


class Rig:
    def __init__(self, root, binary, out):
        self.root, self.bin, self.out = root, binary, out
        self.procs = []
        self.recorders = []

    def custos(self, *args):
        r = subprocess.run([f"{self.bin}/custos", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise Fail(f"custos {' '.join(args[:2])}: {r.stderr.strip()}")
        return r.stdout.strip()

    def config(self, token):
        ledger = f'ledger_url = "{LEDGER}"\nledger_token = "{token}"\n' if token else ""
        text = f"""[storage]
url = "file://{SITE}/objects"
[ledger]
listen = "127.0.0.1:8700"
data_dir = "{SITE}/ledger"
origin = "usb-rig.custos/ledger"
key_file = "{SITE}/keys/ledger.key"
[dock]
id = "dock-01"
key_file = "{SITE}/keys/dock-01.key"
data_dir = "{SITE}/dock"
profiles_dir = "{self.root}/firmware-profiles"
unlock_password = "{PASSWORD}"
mount_root = "{SITE}/mnt"
mount_options = "iocharset=iso8859-1"
usb = true
slots = []
status_listen = "127.0.0.1:8710"
part_size_mib = 5
{ledger}"""
        with open(f"{SITE}/custos.toml", "w") as f:
            f.write(text)
        return f"{SITE}/custos.toml"

    def start(self, name, argv, env=None):
        log = open(f"{self.out}/{name}.log", "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ, **(env or {})))
        self.procs.append(p)
        return p

    def setup(self):
        os.makedirs(f"{SITE}/keys")
        os.makedirs(f"{SITE}/mnt")
        self.custos("keygen", "--out", f"{SITE}/keys/ledger.key", "--name", "ledger")
        self.custos("keygen", "--out", f"{SITE}/keys/dock-01.key", "--name", "dock-01")
        cfg = self.config(None)
        dock_token = self.custos("token", "create", "--config", cfg, "--role", "dock",
                                 "--name", "dock-01", "--key", f"{SITE}/keys/dock-01.key.pub")
        self.audit = self.custos("token", "create", "--config", cfg, "--role", "auditor",
                                 "--name", "audit-1")
        cfg = self.config(dock_token)
        self.start("ledger", [f"{self.bin}/custos", "ledger", "serve", "--config", cfg])
        wait_for("the ledger", lambda: self._up(f"{LEDGER}/healthz"), 120)
        # udevd relays the kernel's uevents to libusb's hotplug monitor.
        os.makedirs("/run/udev", exist_ok=True)
        self.start("udevd", ["/lib/systemd/systemd-udevd"])
        time.sleep(1)
        self.dock = self.start("dock", [f"{self.bin}/custos", "dock", "run", "--config", cfg],
                               {"RUST_LOG": "info"})
        wait_for("the dock's status endpoint", lambda: self._up(STATUS), 120)
        wait_for("the dock watching USB", lambda: "watching USB" in self.dock_log() or
                 "USB watching is off" in self.dock_log(), 60)
        check("USB watching is off" not in self.dock_log(), "the dock cannot use USB")

    @staticmethod
    def _up(url):
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except Exception:
            return False

    def dock_log(self):
        with open(f"{self.out}/dock.log", errors="replace") as f:
            return f.read()

    def entries(self):
        out, start = [], 0
        while True:
            batch = http_json(f"{LEDGER}/v1/entries?start={start}", self.audit, lines=True)
            out.extend(e["entry"] for e in batch)
            if len(batch) < 4096:
                return out
            start += len(batch)

    def of(self, recorder_id):
        """Entries about a recorder: its recorder.* entries and the segment.*
        entries of its segments (by the manifests of segment.ingested)."""
        entries = self.entries()
        segs = {e["subject"] for e in entries if e["action"] == "segment.ingested"
                and manifest(e)["recorder"]["id"] == recorder_id}
        return [e for e in entries if (e["action"].startswith("recorder.") and e["subject"] == recorder_id)
                or (e["action"].startswith("segment.") and e["subject"] in segs)]

    def slots(self):
        return {s["slot"]: s for s in http_json(STATUS)["slots"]}

    def slot_of(self, recorder_id):
        for s in self.slots().values():
            if s.get("recorder_id") == recorder_id:
                return s
        return None

    def dock_alive(self):
        return self.dock.poll() is None

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()


def manifest(entry):
    env = entry["details"]["manifest"]
    return json.loads(base64.b64decode(env["payload"]))


def actions(entries):
    return [e["action"] for e in entries]


def check_ingested(rig, rec, wiped=True, timeout=30):
    """check_entries, allowing the dock's outbox a moment: "safe to undock"
    means every event is durable in the dock's journal, not yet that the
    ledger has it."""
    end = time.time() + timeout
    while True:
        try:
            return check_entries(rig, rec, wiped)
        except Fail:
            if time.time() > end:
                raise
            time.sleep(0.5)


def check_entries(rig, rec, wiped=True):
    """Every clip of rec ingested once, verified, wiped after verification;
    manifests name the serial and officer read over USB. Returns the
    recorder's entries and manifests."""
    ents = rig.of(rec.serial)
    ingested = [e for e in ents if e["action"] == "segment.ingested"]
    manifests = [manifest(e) for e in ingested]
    names = sorted(os.path.basename(m["original_name"]) for m in manifests)
    check(names == rec.clips, f"{rec.serial}: segment.ingested for {names}, clips {rec.clips}")
    for e in ingested:
        seg = e["subject"]
        steps = [(x["seq"], x["action"]) for x in ents if x["subject"] == seg]
        want = ["segment.ingested", "segment.verified"] + (["segment.wiped"] if wiped else [])
        check([a for _, a in steps] == want, f"{rec.serial}: entries of {seg}: {steps}")
    for m in manifests:
        check(m["recorder"]["id"] == rec.serial, f"manifest names recorder {m['recorder']['id']}")
        check(m["recorder"]["profile"] == "simulated", f"manifest profile {m['recorder']['profile']}")
        check(m["officer_id"] == rec.officer, f"manifest officer {m['officer_id']} (want {rec.officer})")
        check("clock_offset_ms" in m["dock"], "manifest has no clock offset")
    return ents, manifests


def docked_entry(ents, rec):
    d = [e for e in ents if e["action"] == "recorder.docked"]
    check(d, f"{rec.serial}: no recorder.docked")
    det = d[0]["details"]
    check(det.get("transport") == "usb", f"recorder.docked transport {det.get('transport')}")
    check(det.get("serial") == rec.serial, f"recorder.docked serial {det.get('serial')}")
    check(det.get("officer_id") == rec.officer, f"recorder.docked officer {det.get('officer_id')}")
    check("clock_offset_ms" in det, "recorder.docked has no clock offset")
    return det


def wait_safe(rig, rec, timeout=240):
    def safe():
        s = rig.slot_of(rec.serial)
        if s and s["state"] == "error":
            raise Fail(f"slot {s['slot']}: {s.get('message')}")
        return s if s and s["safe_to_undock"] else None
    return wait_for(f"{rec.serial} safe to undock", safe, timeout)


def wait_undocked(rig, rec, timeout=60):
    return wait_for(f"recorder.undocked of {rec.serial}",
                    lambda: [e for e in rig.of(rec.serial) if e["action"] == "recorder.undocked"], timeout)


# --- the scenarios -----------------------------------------------------------

def s5_unknown_device(rig):
    """QEMU's usb-storage (46f4:0001) matches no profile: one log line, untouched."""
    say("@@QMP plug-stick")
    wait_for("the stick's log line", lambda: "46f4:0001" in rig.dock_log(), 90)
    time.sleep(3)
    lines = [l for l in rig.dock_log().splitlines() if "46f4:0001" in l]
    check(len(lines) == 1, f"{len(lines)} log lines about 46f4:0001")
    check("no firmware profile matches" in lines[0], f"log line: {lines[0]}")
    with open("/proc/self/mountinfo") as f:
        check(SITE + "/mnt" not in f.read(), "something is mounted under the dock's mount root")
    check(not any(s["state"] not in ("empty",) for s in rig.slots().values()),
          f"a slot is busy: {rig.slots()}")
    say("@@QMP unplug-stick")
    return "ignored with one log line, never mounted"


def s1_plug_in(rig):
    rec = Recorder(rig, "rec1", "SIM0001", "100234", "dummy_udc.0")
    slot = wait_safe(rig, rec)
    ents, manifests = check_ingested(rig, rec)
    det = docked_entry(ents, rec)
    check(abs(det["clock_offset_ms"]) < 3000, f"clock offset {det['clock_offset_ms']} ms")
    check(rec.remaining() == [], f"left on the recorder: {rec.remaining()}")
    log = rec.log_text()
    check("unlock accepted" in log, "the recorder was not unlocked over USB")
    check("request 0x01 IN" in log and "request 0x04 IN" in log, "identify/clock not read over USB")
    rec.unplug()
    wait_undocked(rig, rec)
    acts = actions(rig.of(rec.serial))
    check(acts[0] == "recorder.docked" and acts[-1] == "recorder.undocked", f"entries {acts}")
    rec.remove()
    return (f"{len(manifests)} clips ingested, verified and wiped; slot {slot['slot']} "
            f"safe to undock after {slot.get('safe_after_seconds')} s; docked…undocked")


def s4_wrong_password(rig):
    rec = Recorder(rig, "rec4", "SIM0004", "100444", "dummy_udc.0", password="not-the-docks")

    def failed():
        for s in rig.slots().values():
            if s["state"] == "error" and "password" in (s.get("message") or ""):
                return s
        return None
    slot = wait_for("the slot's error", failed, 120)
    time.sleep(2)
    check("refused: wrong password" in rec.log_text(), "the recorder saw no wrong unlock")
    check("inserting the medium" not in rec.log_text() and "unlock accepted" not in rec.log_text(),
          "the medium was inserted")
    check(rec.remaining() == rec.clips, f"the volume changed: {rec.remaining()}")
    ents = [e for e in rig.entries() if "SIM0004" in json.dumps(e)]
    check(not [e for e in ents if e["action"].startswith("segment.")], "segments recorded")
    check(rig.dock_alive(), "the dock exited")
    rec.remove()
    return f"slot {slot['slot']}: {slot['message']}; nothing read or wiped"


def s2_two_at_once(rig):
    a = Recorder(rig, "rec21", "SIM0021", "100221", "dummy_udc.0")
    b = Recorder(rig, "rec22", "SIM0022", "100222", "dummy_udc.1")
    sa = wait_safe(rig, a)
    sb = wait_safe(rig, b)
    check(sa["slot"] != sb["slot"], f"one slot for both: {sa['slot']}")
    for r in (a, b):
        check_ingested(rig, r)
        check(r.remaining() == [], f"{r.serial}: left {r.remaining()}")
    for r in (a, b):
        r.unplug()
    for r in (a, b):
        wait_undocked(rig, r)
        r.remove()
    return f"both ingested; {sa['slot']} and {sb['slot']} safe to undock"


def s6_clock(rig):
    skew = 5 * 3600
    rec = Recorder(rig, "rec6", "SIM0006", "100266", "dummy_udc.0", skew=skew)
    wait_safe(rig, rec)
    ents, manifests = check_ingested(rig, rec)
    det = docked_entry(ents, rec)
    check(abs(det["clock_offset_ms"] - skew * 1000) < 3000, f"offset {det['clock_offset_ms']} ms")
    for m in manifests:
        check(abs(m["dock"]["clock_offset_ms"] - skew * 1000) < 3000,
              f"manifest offset {m['dock']['clock_offset_ms']}")
    sets = [e for e in ents if e["action"] == "recorder.clock_set"]
    check(len(sets) == 1, f"{len(sets)} recorder.clock_set entries")
    check(sets[0]["details"].get("method") == "usb", f"clock_set {sets[0]['details']}")
    check(abs(sets[0]["details"]["offset_ms_before"] - skew * 1000) < 3000, "offset before")
    log = rec.log_text().splitlines()
    after = [l for l in log if "clock set (skew now" in l]
    check(after, "the recorder's clock was not set over USB")
    now_skew = int(after[-1].split("skew now ")[1].split()[0])
    check(abs(now_skew) <= 2, f"recorder clock still off by {now_skew} s")
    rec.unplug()
    wait_undocked(rig, rec)
    rec.remove()
    return f"offset {det['clock_offset_ms']} ms measured, in the manifests, clock set over USB (now {now_skew} s)"


def s3_unplug_mid_ingest(rig):
    rec = Recorder(rig, "rec3", "SIM0003", "100233", "dummy_udc.0")
    # Unplug while the copy is under way: the dock's status shows bytes
    # copied but not all of them (or, on a fast machine, the first
    # segment.ingested is already on the record). The ledger alone is too
    # late a signal: uploads run ahead of their custody entries, and by the
    # first segment.ingested most clips may be stored already.
    def copying():
        slot = rig.slot_of(rec.serial) or {}
        under_way = 0 < slot.get("bytes_done", 0) < slot.get("bytes_total", 0)
        return under_way or [e for e in rig.of(rec.serial) if e["action"] == "segment.ingested"]
    wait_for("the copy under way", copying, 240, every=0.1)
    rec.unplug()
    time.sleep(1)
    ents = rig.of(rec.serial)
    done_before = len([e for e in ents if e["action"] == "segment.ingested"])
    check(done_before < len(rec.clips), "the ingest finished before the unplug (clips too small)")
    # The screen tells the officer to plug it back in (not "empty").
    def red():
        s = rig.slot_of(rec.serial) or {}
        return s.get("state") == "unplugged" and not s.get("safe_to_undock")
    wait_for("the dock's status turning red (plug it back in)", red, 60)
    # No segment wiped without its segment.verified before it.
    for e in [x for x in rig.of(rec.serial) if x["action"] == "segment.wiped"]:
        prior = [x for x in rig.of(rec.serial) if x["subject"] == e["subject"] and x["seq"] < e["seq"]]
        check("segment.verified" in actions(prior), f"{e['subject']} wiped unverified")
    # What the first docking wiped must be gone from the volume for good.
    wiped_first = sorted(os.path.basename(manifest(e)["original_name"])
                         for e in rig.of(rec.serial) if e["action"] == "segment.ingested"
                         and e["subject"] in {x["subject"] for x in rig.of(rec.serial)
                                              if x["action"] == "segment.wiped"})
    on_volume = rec.remaining()
    check(not set(wiped_first) & set(on_volume),
          f"wiped before the unplug but still on the volume: {sorted(set(wiped_first) & set(on_volume))}")
    time.sleep(2)
    rec.plug()
    wait_safe(rig, rec)
    ents, manifests = check_ingested(rig, rec)
    check(rec.remaining() == [], f"left on the recorder: {rec.remaining()} "
          f"(wiped before the unplug: {wiped_first}; on the volume then: {on_volume})")
    # A wipe the unplug interrupted is finished at the replug, not reported
    # as a file "on the recorder again".
    log = rig.dock_log()
    check("is on the recorder again" not in log, "the replug reported a file as on the recorder again")
    rechecked = log.count("not counted as wiped")
    rec.unplug()
    wait_undocked(rig, rec)
    rec.remove()
    return (f"unplugged after {done_before}/{len(rec.clips)} segments "
            f"({len(wiped_first)} wiped, {rechecked} wipes left for the replug); resumed, "
            f"one segment.ingested per segment")


SCENARIOS = [
    (5, "a device no profile matches", s5_unknown_device),
    (1, "a recorder plugged in", s1_plug_in),
    (4, "wrong unlock password", s4_wrong_password),
    (2, "two recorders at once", s2_two_at_once),
    (6, "clock off by hours", s6_clock),
    (3, "unplugged mid-ingest, plugged back", s3_unplug_mid_ingest),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rig = Rig(args.root, args.bin, args.out)
    try:
        try:
            rig.setup()
        except Exception as e:
            for n, name, _ in SCENARIOS:
                say(f"@@RESULT {n} FAIL {name}: setup failed: {e}")
            return 1
        for n, name, fn in SCENARIOS:
            t = time.time()
            try:
                detail = fn(rig)
                say(f"@@RESULT {n} ok {name} ({time.time() - t:.0f} s): {detail}")
            except Fail as e:
                say(f"@@RESULT {n} FAIL {name}: {e}")
            except Exception as e:
                traceback.print_exc()
                say(f"@@RESULT {n} FAIL {name}: {type(e).__name__}: {e}")
            # A failed scenario leaves no gadget behind on the UDCs.
            for r in rig.recorders:
                r.remove()
            rig.recorders.clear()
            if not rig.dock_alive():
                say("@@LOG the dock exited; see dock.log")
                break
    finally:
        rig.stop()
        subprocess.run("dmesg --time-format iso > " + args.out + "/dmesg.txt", shell=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
