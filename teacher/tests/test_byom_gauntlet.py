"""The bring-your-own-model gauntlet (bench/byom/gauntlet.py), small: every lesionfuse command on external-style
ONNX models with random weights (torchvision, timm, onnx), each expected to work or to be refused in one line.

Needs the built CLI (`npx tsc -p .`, which `npm test` runs first) and node on PATH; skipped, saying so,
without them. About two minutes on the shared 2-core machine (most of it node start-ups and exports).
"""
import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'bench' / 'byom' / 'gauntlet.py'


def _load():
    spec = importlib.util.spec_from_file_location('byom_gauntlet', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_command_on_external_models(tmp_path):
    g = _load()
    if shutil.which('node') is None:
        pytest.skip('node is not on PATH: the gauntlet runs the lesionfuse CLI')
    if not g.CLI.exists():
        pytest.skip(f'{g.CLI} is missing: build the CLI first (npx tsc -p .; npm test does it)')
    images = sorted(g.FIXTURE_IMAGES.iterdir())[:4]
    rows, models = g.gauntlet(tmp_path, images, size=32, log=lambda *_: None)
    assert [r['model'] for r in rows] == [m['name'] for m in models]
    table = '\n'.join(f'{r["model"]:18s} ' + ' | '.join(f'{c}: {r["cells"][c]}' for c in g.COMMANDS) for r in rows)
    bad = g.check(rows)
    assert not bad, '\n'.join(bad) + '\n\n' + table
    for r in rows:
        for c in g.COMMANDS:
            cell = r['cells'][c]
            if cell.startswith('refused'):
                # A refusal is LesionFuse's one-line error naming the problem, not a stack trace.
                assert cell.startswith('refused: error: ') and 'at ' not in cell.split(': ', 2)[-1][:3], cell
        # Parameters counted by inspect equal an independent count with the onnx package (Constant nodes and If branches included).
        i = r['notes']['inspect']
        assert i['parameters'] == i['reference_parameters'] > 0, r['model']
    by = {r['model']: r for r in rows}
    assert by['constant_weights']['notes']['inspect']['parameters'] > 0
    # Both If branches' weights (5x5 and 3x3 convs with a bias) and the scalar Constant the condition compares with.
    assert by['if_branches']['notes']['inspect']['parameters'] == (3 * 5 * 5 + 1) + (3 * 3 * 3 + 1) + 1
    # Raw-output parity of the default rewrites: exact or float32 rounding, on every model rewrite ran on.
    for r in rows:
        if 'rewrite' in r['notes']:
            assert r['notes']['rewrite']['max_dy'] <= 1e-4, (r['model'], r['notes']['rewrite'])
