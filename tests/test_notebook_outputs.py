"""The detector conftest.py runs on every notebook cell nbval executes (tools/notebook_outputs.py):
it finds leaked object reprs and reports printed twice, and passes clean outputs."""
import nbformat
import pytest

from tools.notebook_outputs import leaked_reprs, repeated_reports


def stream(text: str) -> dict:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def result(text: str, **more: str) -> dict:
    return nbformat.v4.new_output("execute_result", data={"text/plain": text, **more}, execution_count=1)


REPORT = "doctor's report\n  torch 2.5.1: ok\n  data: toy Carvana, 16 images\n  device: cpu\n"


@pytest.mark.parametrize("leak, found", [
    ("(Text(0.5, 1.0, 'x'), <matplotlib.image.AxesImage at 0x7f3a2c1b9d50>)", "Text(0.5, 1.0, 'x')"),
    ("[<matplotlib.lines.Line2D at 0x7f3a2c1b9d50>]", "<matplotlib.lines.Line2D at 0x7f3a2c1b9d50>"),
    ("<Figure size 640x480 with 2 Axes>", "<Figure size 640x480 with 2 Axes>"),
    ("<BarContainer object of 3 artists>", "<BarContainer object of 3 artists>"),
    ("<__main__.Thing object at 0x7f00aa>", "<__main__.Thing object at 0x7f00aa>"),
])
def test_a_leaked_repr_is_found(leak, found):
    assert found in leaked_reprs([result(leak)])


def test_a_leaked_repr_printed_to_a_stream_is_found_too():
    assert leaked_reprs([stream("done\n[<matplotlib.lines.Line2D at 0xdeadbeef>]\n")])


@pytest.mark.parametrize("clean", [
    [stream("epoch 1: loss 0.41\nepoch 2: loss 0.30\n")],
    [result("90")],  # not a repr, though lesson 09's bare `90` is stray: the lead removes it by hand
    [result("0.9312")],
    [result("<Figure size 640x480 with 1 Axes>", **{"image/png": "iVBOR..."})],  # a figure shown: the picture
    [result("VBox(children=(...))", **{"application/vnd.jupyter.widget-view+json": {"model_id": "x"}})],
    [result("{'dice': 0.91, 'iou': 0.84}")],
])
def test_clean_outputs_pass(clean):
    assert leaked_reprs(clean) == []


def test_a_report_printed_by_two_cells_is_found_with_both_cell_numbers():
    cells = [(1, [stream(REPORT)]), (2, [result("3")]), (7, [stream("Section 1\n" + REPORT)])]
    found = repeated_reports(cells)
    assert len(found) == 1 and found[0].startswith("cell 1 and cell 7 both print:")
    assert "torch 2.5.1: ok" in found[0]


def test_one_cell_printing_a_report_twice_is_found():
    assert repeated_reports([(3, [stream(REPORT), result("1")]), (4, [stream(REPORT), stream(REPORT)])])
    assert repeated_reports([(3, [stream(REPORT)]), (4, [result(REPORT)])]) == []  # a value shown, not printed
    assert repeated_reports([(3, [stream(REPORT + REPORT)])])  # nbval joins a cell's prints into one output
    assert repeated_reports([(3, [stream(REPORT)])]) == []


def test_short_repeats_and_different_numbers_are_not_reports():
    cells = [(1, [stream("ok\nok\n")]), (2, [stream("ok\nok\n")]),  # two lines: too short to be a report
             (3, [stream("epoch 1 loss 0.5\nepoch 2 loss 0.4\nepoch 3 loss 0.3\n")]),
             (4, [stream("epoch 1 loss 0.6\nepoch 2 loss 0.4\nepoch 3 loss 0.3\n")])]
    assert repeated_reports(cells) == []


def test_a_value_shown_twice_on_purpose_is_not_a_report():
    """Lesson 03 shows the same tensor from a hand-written up-convolution and from ConvTranspose2d."""
    tensor = "tensor([[ 1.0000,  0.5000,  2.0000,  1.0000],\n        [ 0.2500, -1.0000,  0.5000, -2.0000],\n" \
             "        [ 3.0000,  1.5000,  4.0000,  2.0000],\n        [ 0.7500, -3.0000,  1.0000, -4.0000]])"
    assert repeated_reports([(2, [result(tensor)]), (4, [result(tensor)])]) == []
    assert repeated_reports([(2, [stream(tensor)]), (4, [stream(tensor)])])  # printed twice: still a report
