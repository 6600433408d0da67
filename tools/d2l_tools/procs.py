"""Plumbing the tools share: run a command with its output streamed, read pytest's JUnit XML."""

import subprocess
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

_print_lock = threading.Lock()


def stream(command, env=None, cwd=None, prefix=None):
    """Run ``command``; its output goes to ours, each line tagged ``[prefix]`` when given.

    A prefix is for commands that run beside others, so that their lines stay apart.
    Returns the exit code.
    """
    if not prefix:
        return subprocess.call(command, cwd=cwd, env=env)
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    for line in process.stdout:
        with _print_lock:
            print(f"[{prefix}] {line}", end="", flush=True)
    return process.wait()


@dataclass
class Results:
    """What a JUnit XML file written by pytest says."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list = field(default_factory=list)  # "classname::name" of each failed case
    messages: dict = field(default_factory=dict)  # failed case's name -> its failure message and text
    properties: Counter = field(default_factory=Counter)  # (name, value) of test-case properties


def junit_results(path):
    root = ET.parse(path).getroot()
    results = Results()
    for case in root.iter("testcase"):
        failure = case.find("failure")
        failure = case.find("error") if failure is None else failure
        if failure is not None:
            results.failed += 1
            results.failures.append(f"{case.get('classname', '')}::{case.get('name', '')}")
            results.messages[case.get("name", "")] = (failure.get("message") or "") + "\n" + (failure.text or "")
        elif case.find("skipped") is not None:
            results.skipped += 1
        else:
            results.passed += 1
        for prop in case.iter("property"):
            results.properties[(prop.get("name"), prop.get("value"))] += 1
    # A collection error has no test case of its own: count the suites' errors beyond the cases.
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    reported = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    if reported > results.failed:
        results.failures.append(f"{reported - results.failed} error(s) outside any test (collection?)")
        results.failed = reported
    return results
