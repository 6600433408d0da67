"""The notebook tools (cells, split, execute, checks, nbval) on tiny tabbed fixtures (tests/fixtures/notebooks).

tabbed.ipynb, executed under all four kernels by the tool itself, has these cells:
 0 setup (shared)    1 markdown         2-5 "hello from <fw>", one cell per framework
 6 shared `sum`      7 pytorch          8 `%%tab mxnet,jax`    9 tensorflow (no output)
10 `%%tab all`      11 shared plot     12 shared clock reading (remove-cell, nbval-ignore-output)
The tests that start kernels use the installed d2l kernels and take a few seconds each.
"""

import base64
import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from d2l_shim import FRAMEWORKS
from d2l_shim.tab import Tab, TabMarkerError
from d2l_tools import cells, chapter, checks, execute, notebooks
from d2l_tools import split as splitting
from d2l_tools.kernels import REPRODUCIBLE_ENV
from d2l_tools.nbval_plugin import nbval_command

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "notebooks"
HELLO_CELLS = {"pytorch": 2, "mxnet": 3, "tensorflow": 4, "jax": 5}


def load(name="tabbed"):
    return nbformat.read(str(FIXTURES / f"{name}.ipynb"), as_version=4)


def write(nb, folder, name="tabbed"):
    path = Path(folder) / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def list_in_toc(folder, *names):
    """Give ``folder`` the index.md whose toctree is the chapter's list of notebooks."""
    entries = "\n".join(names)
    (Path(folder) / "index.md").write_text(f"# Chapter\n\n```{{toctree}}\n{entries}\n```\n")


def problems_of(nb, tmp_path, name="tabbed"):
    return checks.check(write(nb, tmp_path, name))


def edit_source(nb, index, source, refresh_hash=False):
    nb.cells[index].source = source
    if refresh_hash:  # as if `make notebooks` had run on the new source
        nb.cells[index].metadata.d2l.source_sha256 = cells.source_sha256(source)


def stream(text):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def installed_kernels():
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager().find_kernel_specs()


def needs_kernels(*frameworks):
    missing = [f"d2l-{fw}" for fw in frameworks if f"d2l-{fw}" not in installed_kernels()]
    return pytest.mark.skipif(bool(missing), reason=f"kernels {missing} not installed (make setup)")


# --- cells ----------------------------------------------------------------------------------


def test_cell_tab_reads_the_marker_line():
    code = nbformat.v4.new_code_cell
    assert cells.cell_tab(code("x = 1")) == Tab(FRAMEWORKS, True)
    assert cells.cell_tab(code("%%tab all\nx = 1")) == Tab(FRAMEWORKS, True)
    assert cells.cell_tab(code("%%tab jax\nx")) == Tab(("jax",), False)
    assert cells.cell_tab(code("%%tab jax,mxnet\nx")) == Tab(("mxnet", "jax"), False)
    assert cells.cell_tab(code("%%table\nx")).shared  # another magic, not ours
    with pytest.raises(TabMarkerError, match="pytroch"):
        cells.cell_tab(code("%%tab pytroch\nx"))
    with pytest.raises(TabMarkerError, match="twice"):
        cells.cell_tab(code("%%tab jax,jax\nx"))
    assert cells.cell_body(code("%%tab jax\nx = 1\ny")) == "x = 1\ny"
    assert cells.cell_body(code("%%tab jax")) == ""


def test_fixture_is_clean():
    # The baseline for the tests below, which each break one rule.
    assert checks.check(FIXTURES / "tabbed.ipynb") == []


# --- split ----------------------------------------------------------------------------------

# First lines of the code cells each framework's notebook must hold, in order (read off the
# fixture by hand, not computed with the tool).
SPLIT_FIRST_LINES = {
    "pytorch": ["framework = 'pytorch'", "print('tensors from torch')"],
    "mxnet": ["framework = 'mxnet'", "print('numpy-like arrays')"],
    "tensorflow": ["framework = 'tensorflow'", "scale = 4"],
    "jax": ["framework = 'jax'", "print('numpy-like arrays')"],
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_split_keeps_the_frameworks_cells_and_outputs(framework):
    split = splitting.split_notebook(load(), framework)
    code = [c for c in split.cells if c.cell_type == "code"]
    own_first, own_second = SPLIT_FIRST_LINES[framework]
    expected = [
        "%load_ext d2l_shim.tab",
        own_first,
        "numbers = [1, 2, 3]",
        own_second,
        "print(len(numbers))",
        "import matplotlib.pyplot as plt",
        "import time",
    ]
    assert [c.source.split("\n")[0] for c in code] == expected
    assert not any("%%tab" in c.source for c in code)
    assert code[1].outputs[0].text == f"hello from {framework}\n"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert code[2].outputs[0].execution_count == 3  # execute_result numbered like its cell
    assert all("source_sha256" not in c.metadata.get("d2l", {}) for c in code)
    assert code[-1].metadata.tags == ["remove-cell", "nbval-ignore-output"]
    assert [c.cell_type for c in split.cells].count("markdown") == 1
    display = {"pytorch": "PyTorch", "mxnet": "MXNet", "tensorflow": "TensorFlow", "jax": "JAX"}[framework]
    assert split.metadata.kernelspec == {
        "name": f"d2l-{framework}",
        "display_name": f"Python 3 (d2l · {display})",
        "language": "python",
    }


def test_split_command_is_stable_and_prunes(tmp_path):
    src, out = tmp_path / "chapter_x", tmp_path / "out"
    src.mkdir()
    shutil.copy(FIXTURES / "tabbed.ipynb", src / "tabbed.ipynb")
    shutil.copy(FIXTURES / "tabbed.ipynb", src / "gone.ipynb")
    list_in_toc(src, "tabbed", "gone")
    assert splitting.main(["--src", str(src), "--out", str(out)]) == 0
    targets = {fw: out / fw / "chapter_x" / "tabbed.ipynb" for fw in FRAMEWORKS}
    first = {fw: (p.read_bytes(), p.stat().st_mtime_ns) for fw, p in targets.items()}
    (src / "gone.ipynb").unlink()
    list_in_toc(src, "tabbed")
    assert splitting.main(["--src", str(src), "--out", str(out)]) == 0
    assert {fw: (p.read_bytes(), p.stat().st_mtime_ns) for fw, p in targets.items()} == first
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["tabbed.ipynb"] * 4
    # The command writes the reader's edition (d2l_tools.editions): the generic kernel, no tab extension.
    edition = nbformat.read(str(targets["jax"]), as_version=4)
    assert edition.metadata.kernelspec.name == "python3"
    assert not any("%%tab" in c.source or "%load_ext d2l_shim.tab" in c.source for c in edition.cells)


def test_split_rejects_unknown_tab_names(tmp_path, capsys):
    nb = load()
    edit_source(nb, 3, "%%tab mxnett\nx = 1")
    src = tmp_path / "src"
    src.mkdir()
    write(nb, src)
    list_in_toc(src, "tabbed")
    assert splitting.main(["--src", str(src), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "tabbed.ipynb" in err and "cell 3" in err and "mxnett" in err


# --- merge ----------------------------------------------------------------------------------


# Which frameworks run each framework cell of the fixture (the others run everywhere).
RUN_BY = {
    2: ("pytorch",),
    3: ("mxnet",),
    4: ("tensorflow",),
    5: ("jax",),
    7: ("pytorch",),
    8: ("mxnet", "jax"),
    9: ("tensorflow",),
}


def fake_runs(nb, frameworks=FRAMEWORKS):
    """Executed copies as the kernels would return them; cells run by several agree."""
    runs = {}
    for fw in frameworks:
        run = copy.deepcopy(nb)
        for index, cell in enumerate(run.cells):
            if cell.cell_type != "code":
                continue
            run_by = RUN_BY.get(index, FRAMEWORKS)
            if fw not in run_by:
                cell.outputs = []
            elif len(run_by) == 1 or index == 12:  # 12 prints a clock reading: differs anyway
                cell.outputs = [stream(f"cell {index} under {fw}\n")]
            else:
                cell.outputs = [stream(f"cell {index}\n")]
        runs[fw] = run
    return runs


def test_merge_takes_each_cell_from_its_framework():
    nb = load()
    merged = execute.merge_runs(copy.deepcopy(nb), fake_runs(nb))
    for fw, index in HELLO_CELLS.items():
        assert merged.cells[index].outputs[0].text == f"cell {index} under {fw}\n"
    assert merged.cells[6].outputs[0].text == "cell 6\n"
    assert merged.cells[12].outputs[0].text == "cell 12 under pytorch\n"  # first framework's run
    for cell in merged.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None
            assert cell.metadata.d2l.source_sha256 == cells.source_sha256(cell.source)


def test_merge_of_some_frameworks_keeps_the_other_outputs():
    nb = load()
    merged = execute.merge_runs(copy.deepcopy(nb), fake_runs(nb, ["jax"]))
    assert merged.cells[5].outputs[0].text == "cell 5 under jax\n"
    assert merged.cells[8].outputs[0].text == "cell 8\n"
    for fw in ("pytorch", "mxnet", "tensorflow"):
        index = HELLO_CELLS[fw]
        assert merged.cells[index].outputs == nb.cells[index].outputs


def test_merge_rejects_shared_cells_that_print_differently():
    nb = load()
    runs = fake_runs(nb)
    runs["tensorflow"].cells[6].outputs = [stream("something else\n")]
    runs["jax"].cells[8].outputs = [stream("jax only\n")]  # `%%tab mxnet,jax`: must agree too
    runs["jax"].cells[12].outputs = [stream("varies\n")]  # nbval-ignore-output: may differ
    with pytest.raises(cells.NotebookError) as err:
        execute.merge_runs(copy.deepcopy(nb), runs, name="tabbed.ipynb")
    message = str(err.value)
    assert "tabbed.ipynb" in message
    assert "cell 6 ('numbers = [1, 2, 3]')" in message
    assert "tensorflow against pytorch" in message and "re-run: 'something else'" in message
    assert "cell 8" in message and "jax against mxnet" in message and "re-run: 'jax only'" in message
    assert "cell 12" not in message


def test_merge_rejects_output_from_skipped_cells():
    nb = load()
    runs = fake_runs(nb)
    runs["pytorch"].cells[5].outputs = [stream("should have been skipped\n")]
    with pytest.raises(cells.NotebookError, match=r"cell 5 .*under pytorch although"):
        execute.merge_runs(copy.deepcopy(nb), runs)


# --- check ----------------------------------------------------------------------------------


def test_check_finds_stale_outputs(tmp_path):
    nb = load()
    edit_source(nb, 2, nb.cells[2].source + "\nprint('edited')")
    assert problems_of(nb, tmp_path) == [
        "cell 2 ('%%tab pytorch'): stale outputs, the source changed after they were made: run `make notebooks`"
    ]


def test_check_finds_a_missing_framework(tmp_path):
    nb = load()
    del nb.cells[5]
    problems = problems_of(nb, tmp_path)
    assert len(problems) == 1
    assert "tab group starting at cell 2 ('%%tab pytorch')" in problems[0] and "no cell for jax" in problems[0]


def test_check_finds_frameworks_out_of_order(tmp_path):
    nb = load()
    nb.cells[3], nb.cells[4] = nb.cells[4], nb.cells[3]
    problems = problems_of(nb, tmp_path)
    assert len(problems) == 1
    assert "order pytorch, tensorflow, mxnet, jax" in problems[0]


def test_check_finds_a_framework_twice(tmp_path):
    nb = load()
    edit_source(nb, 9, "%%tab tensorflow,jax\nscale = 4", refresh_hash=True)
    problems = problems_of(nb, tmp_path)
    assert len(problems) == 1 and "more than one cell for jax" in problems[0]


def test_check_finds_unknown_tab_names(tmp_path):
    nb = load()
    edit_source(nb, 4, "%%tab tensorflw\nframework = 'tensorflow'", refresh_hash=True)
    problems = problems_of(nb, tmp_path)
    assert len(problems) == 1  # no extra noise about the group it breaks
    assert problems[0].startswith("cell 4 ('%%tab tensorflw'): unknown framework 'tensorflw'")


def test_check_finds_error_outputs(tmp_path):
    nb = load()
    nb.cells[7].outputs = [
        nbformat.v4.new_output("error", ename="NameError", evalue="name 'x' is not defined", traceback=[])
    ]
    assert problems_of(nb, tmp_path) == [
        "cell 7 ('%%tab pytorch'): stored error output (NameError: name 'x' is not defined)"
    ]


def test_check_tells_unrun_from_silent_cells(tmp_path):
    nb = load()
    nb.cells[7].outputs = []  # ran, printed nothing, but not declared silent
    del nb.cells[3].metadata.d2l["source_sha256"]  # never executed by the tool
    nb.cells[9].metadata.d2l.no_output = False
    problems = problems_of(nb, tmp_path)
    assert len(problems) == 3
    assert problems[0].startswith("cell 3 ('%%tab mxnet'): never run by `make notebooks`")
    assert problems[1].startswith("cell 7 ('%%tab pytorch'): framework cell without stored output")
    assert problems[2].startswith("cell 9 ('%%tab tensorflow'): framework cell without stored output")


def test_check_finds_tag_kernel_and_setup_problems(tmp_path):
    nb = load()
    del nb.cells[12].metadata.d2l["nbval_ignore_reason"]
    nb.cells[2].execution_count = 4
    nb.metadata.kernelspec.display_name = "Python 3"
    edit_source(nb, 0, "%matplotlib inline", refresh_hash=True)
    problems = problems_of(nb, tmp_path)
    assert len(problems) == 4
    assert "kernelspec display_name is 'Python 3'" in problems[0]
    assert "first code cell" in problems[1] and "%load_ext d2l_shim.tab" in problems[1]
    assert problems[2].startswith("cell 2 ('%%tab pytorch'): execution counts must be null")
    assert problems[3].startswith("cell 12 ('import time'): tagged nbval-ignore-output without")


def accuracy_check(source, frameworks="all"):
    cell = nbformat.v4.new_code_cell(f"%%tab {frameworks}\n{source}", metadata={"tags": ["remove-cell"]})
    cell.metadata["d2l"] = {"source_sha256": cells.source_sha256(cell.source), "no_output": True}
    return cell


def test_training_notebooks_need_accuracy_checks():
    nb = load()
    assert not chapter.is_training_notebook(nb)
    nb.cells.append(nbformat.v4.new_code_cell("trainer.fit(model, data)"))
    assert chapter.is_training_notebook(nb)  # a notebook that trains is recognised by its code
    nb.cells.pop()
    problems = [p for p in checks.check_notebook(nb, training=True) if p.startswith("training notebook")]
    assert problems == [
        "training notebook: no remove-cell-tagged cell asserting accuracy >= 0.80 for pytorch, mxnet, tensorflow, jax"
    ]
    nb.cells += [
        accuracy_check("assert test_acc >= 0.80, test_acc", "pytorch"),
        accuracy_check("assert acc > 0.5", "mxnet"),  # too weak
        accuracy_check("assert loss >= 0.8", "tensorflow"),  # not accuracy
        accuracy_check("print(acc >= 0.8)", "jax"),  # not an assertion
    ]
    problems = [p for p in checks.check_notebook(nb, training=True) if p.startswith("training notebook")]
    assert problems == [
        "training notebook: no remove-cell-tagged cell asserting accuracy >= 0.80 for mxnet, tensorflow, jax"
    ]
    nb.cells.append(accuracy_check("assert 0.8 <= evaluate_accuracy(net, data) <= 1"))
    assert not [p for p in checks.check_notebook(nb, training=True) if p.startswith("training notebook")]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("assert accuracy >= 0.8", True),
        ("assert metrics['val_acc'] > 0.85, metrics", True),
        ("%time\nassert 0.80 <= acc", True),
        ("assert accuracy >= 0.7", False),
        ("assert loss >= 0.8", False),
        ("print(accuracy >= 0.8)", False),
        ("assert accuracy >= 0.8 +", False),
    ],
)
def test_asserts_accuracy(source, expected):
    assert checks.asserts_accuracy(source) is expected


def test_check_command_reports_per_notebook(tmp_path, capsys):
    nb = load()
    del nb.cells[5]
    bad = write(nb, tmp_path, "bad")
    assert notebooks.main(["check", str(FIXTURES / "tabbed.ipynb"), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{FIXTURES / 'tabbed.ipynb'}: ok" in out
    assert f"{bad}: 1 problem(s)" in out and "no cell for jax" in out


# --- execute (starts kernels) ---------------------------------------------------------------


def unexecuted(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.metadata.get("d2l", {}).pop("source_sha256", None)
    return nb


@needs_kernels("pytorch")
def test_execute_runs_merges_and_is_stable(tmp_path):
    nb = unexecuted(load())
    del nb.cells[12]  # its clock reading would differ between the two runs
    path = write(nb, tmp_path)
    execute.execute_notebooks([path], ["pytorch"], jobs=1, timeout=60)
    done = nbformat.read(str(path), as_version=4)
    assert done.cells[2].outputs[0].text == "hello from pytorch\n"
    assert done.cells[6].outputs[0].data["text/plain"] == "6"
    assert "image/png" in done.cells[11].outputs[0].data
    assert done.cells[3].outputs == []  # mxnet's cell: not run
    assert "source_sha256" not in done.cells[3].metadata.d2l
    assert done.cells[2].metadata.d2l.source_sha256 == cells.source_sha256(done.cells[2].source)
    assert all(c.execution_count is None and "execution" not in c.metadata for c in done.cells if c.cell_type == "code")
    first = path.read_bytes()
    execute.execute_notebooks([path], ["pytorch"], jobs=1, timeout=60)
    assert path.read_bytes() == first


@needs_kernels("pytorch")
def test_execute_reports_errors_and_writes_nothing(tmp_path):
    path = tmp_path / "failing.ipynb"
    shutil.copy(FIXTURES / "failing.ipynb", path)
    before = path.read_bytes()
    with pytest.raises(cells.NotebookError) as err:
        execute.execute_notebooks([path], ["pytorch"], jobs=1, timeout=60)
    message = str(err.value)
    assert "failing.ipynb: pytorch: cell 1 ('%%tab pytorch') failed" in message
    assert "ZeroDivisionError" in message and "about to fail" in message
    assert path.read_bytes() == before


@needs_kernels("pytorch", "jax")
def test_execute_rejects_diverging_shared_cells(tmp_path):
    path = tmp_path / "diverging.ipynb"
    shutil.copy(FIXTURES / "diverging.ipynb", path)
    before = path.read_bytes()
    with pytest.raises(cells.NotebookError) as err:
        execute.execute_notebooks([path], ["pytorch", "jax"], jobs=2, timeout=60)
    message = str(err.value)
    assert "cell 1 ('import os')" in message
    assert "jax against pytorch" in message and "'running pytorch'" in message and "'running jax'" in message
    assert path.read_bytes() == before


# --- nbval (starts pytest and a kernel) -----------------------------------------------------


@needs_kernels("pytorch")
def test_nbval_passes_good_and_names_bad_cells(tmp_path):
    src, out = tmp_path / "chapter_x", tmp_path / "out"
    src.mkdir()
    shutil.copy(FIXTURES / "tabbed.ipynb", src / "good.ipynb")
    bad = load()
    bad.cells[2].outputs = [stream("hello from nobody\n")]  # wrong stored output
    # Shows the same text as the stored figure but draws no image: only our plugin notices
    # (nbval itself skips PNG data).
    edit_source(
        bad,
        11,
        "from IPython.display import display\ndisplay({'text/plain': '<Figure size 200x150 with 1 Axes>'}, raw=True)",
        True,
    )
    write(bad, src, "bad")
    list_in_toc(src, "good", "bad")
    assert splitting.main(["--src", str(src), "--out", str(out)]) == 0
    command = nbval_command("pytorch", out / "pytorch")
    done = subprocess.run(command, cwd=out, capture_output=True, text=True, env={**os.environ, **REPRODUCIBLE_ENV})
    assert done.returncode == 1
    # Code cells of the reader's edition: 0 install, 1 setup, 2 hello, 3 sum, 4 torch, 5 len,
    # 6 plot, 7 clock. good.ipynb passes, `plt.plot(...);` included (see d2l_tools.nbval_plugin).
    assert set(re.findall(r"FAILED (\S+::Cell \d+)", done.stdout)) == {
        "pytorch/chapter_x/bad.ipynb::Cell 2",
        "pytorch/chapter_x/bad.ipynb::Cell 6",
    }
    assert "the re-run has no image/png output (the stored cell has)" in done.stdout
    assert "14 passed" in done.stdout.splitlines()[-1] and "2 failed" in done.stdout.splitlines()[-1]


def test_check_wants_a_reason_for_every_loosened_comparison(tmp_path):
    nb = load()
    nb.cells[2].metadata.d2l["compare"] = {"numbers": {"loss": 0.03}}
    nb.cells[3].metadata.d2l["compare"] = {"numbers": {"loss": "a bit"}, "reason": "noise"}
    problems = problems_of(nb, tmp_path)
    assert any("cell 2" in p and "loosens the comparison without a reason" in p for p in problems)
    assert any("cell 3" in p and "must map labels to non-negative numbers" in p for p in problems)
    nb.cells[2].metadata.d2l["compare"]["reason"] = "SGD amplifies rounding"
    nb.cells[3].metadata.d2l["compare"]["numbers"]["loss"] = 0.03
    assert problems_of(nb, tmp_path) == []


def test_split_notebooks_carry_their_local_images(tmp_path):
    src = tmp_path / "chapter_x"
    (src / "img").mkdir(parents=True)
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'
    (src / "img" / "net.svg").write_text(svg)
    nb = load()
    nb.cells[1].source = (
        "A picture: ![the network](img/net.svg), a web one: ![x](https://example.org/x.png),"
        " a missing one: ![y](img/gone.png)."
    )
    write(nb, src)
    list_in_toc(src, "tabbed")
    [path, *_] = splitting.split_notebooks(cells.find_notebooks(src), tmp_path / "out", ["jax"])
    cell = nbformat.read(str(path), as_version=4).cells[1]
    assert cell.source == (
        "A picture: ![the network](attachment:net.svg), a web one: ![x](https://example.org/x.png),"
        " a missing one: ![y](img/gone.png)."
    )
    assert base64.b64decode(cell.attachments["net.svg"]["image/svg+xml"]).decode() == svg
    assert list(cell.attachments) == ["net.svg"]
