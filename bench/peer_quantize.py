"""The peer side of LesionFuse's quantization benchmark: onnxruntime's own Python quantizer.

Run with teacher/.venv/bin/python (not needed by any TypeScript test).

  peer_quantize.py arith OUT.json
      random cases through quant_utils.compute_scale_zp / quantize_data / the bias formula,
      for bench/quantize-arith-check.ts to compare against src/quantize/arith.ts bit for bit.
  peer_quantize.py static IN.onnx OUT.onnx CALIB_DIR [--calibrator minmax|percentile|entropy]
      quantize_static (QDQ, per-channel, S8S8) on the calibration tensors LesionFuse wrote
      (CALIB_DIR/NNNN.f32 raw float32 NCHW batches + CALIB_DIR/meta.json); prints JSON with the
      calibration+quantization time.
"""
import json
import sys
import time

import numpy as np


def arith(out_path):
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import (
        compute_scale_zp, get_qmin_qmax_for_qType, quantize_data, quantize_nparray)

    rng = np.random.default_rng(0)
    cases = []
    for i in range(400):
        kind = i % 4
        a, b = (rng.standard_normal(2) * (10.0 ** rng.integers(-4, 3))).astype(np.float32)
        if kind == 3:
            a = np.float32(0)
        rmin, rmax = (min(a, b), max(a, b))
        for qtype, name in ((TensorProto.INT8, 'int8'), (TensorProto.UINT8, 'uint8')):
            for symmetric in (False, True):
                for reduce in (False, True):
                    qmin, qmax = get_qmin_qmax_for_qType(qtype, reduce_range=reduce, symmetric=symmetric)
                    zp, scale = compute_scale_zp(np.array(rmin, np.float32), np.array(rmax, np.float32), qmin, qmax, symmetric)
                    vals = (rng.standard_normal(8) * max(abs(rmin), abs(rmax), 1e-3) * 1.3).astype(np.float32)
                    q = quantize_nparray(qtype, vals, np.array(scale, np.float32), zp)
                    cases.append({'kind': 'scale_zp', 'type': name, 'symmetric': symmetric, 'reduce': reduce,
                                  'rmin': float(rmin), 'rmax': float(rmax), 'scale': float(scale), 'zp': int(zp),
                                  'values': [float(v) for v in vals], 'q': [int(v) for v in q]})
    for i in range(100):
        w = (rng.standard_normal(16) * 10.0 ** rng.integers(-3, 1)).astype(np.float32)
        reduce = bool(i % 2)
        zp, scale, q = quantize_data(w, TensorProto.INT8, True, reduce)
        s_in = np.float32(abs(rng.standard_normal()) * 0.05 + 1e-4)
        bias = (rng.standard_normal(1) * 3).astype(np.float32)
        bias_scale = np.asarray([s_in], np.float32) * np.asarray([scale], np.float32) * 1.0
        qb = np.clip((np.asarray(bias, np.float64) / np.asarray(bias_scale, np.float64)).round(), -2**31, 2**31 - 1)
        cases.append({'kind': 'weight', 'reduce': reduce, 'w': [float(v) for v in w], 'scale': float(scale), 'zp': int(zp),
                      'q': [int(v) for v in q], 'inputScale': float(s_in), 'bias': float(bias[0]),
                      'biasScale': float(bias_scale[0]), 'qBias': int(qb[0])})
    with open(out_path, 'w') as f:
        json.dump(cases, f)
    print(f'{len(cases)} cases -> {out_path}')


class _RawReader:
    """Feeds quantize_static the exact batches LesionFuse calibrated on."""

    def __init__(self, calib_dir, input_name):
        meta = json.load(open(f'{calib_dir}/meta.json'))
        self.items = []
        for rec in meta['batches']:
            arr = np.fromfile(f"{calib_dir}/{rec['file']}", dtype=np.float32).reshape(rec['shape'])
            self.items.append({input_name: arr})
        self.i = 0

    def get_next(self):
        if self.i >= len(self.items):
            return None
        self.i += 1
        return self.items[self.i - 1]

    def rewind(self):
        self.i = 0


def static(argv):
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    inp, out, calib_dir = argv[0], argv[1], argv[2]
    method = 'minmax'
    if '--calibrator' in argv:
        method = argv[argv.index('--calibrator') + 1]
    model = onnx.load(inp)
    input_name = model.graph.input[0].name
    reader = _RawReader(calib_dir, input_name)
    cm = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
          'entropy': CalibrationMethod.Entropy}[method]
    t0 = time.perf_counter()
    quantize_static(inp, out, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=cm,
                    extra_options={'CalibMovingAverage': False})
    seconds = time.perf_counter() - t0
    import onnxruntime
    print(json.dumps({'seconds': seconds, 'images': sum(x[input_name].shape[0] for x in reader.items),
                      'onnxruntime': onnxruntime.__version__, 'calibrator': method}))


def export_untrained(out):
    """The fused teacher's architecture with seeded random weights, exported by the teacher's own exporter:
    a stand-in with the real graph (ops, sizes, latency) while no trained checkpoint exists. Its Dice means nothing."""
    import torch
    sys.path.insert(0, '.')
    from teacher.models import build_model
    from teacher.export import export_model
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_model('fused', (192, 256), vit_depth=8).eval()
    from pathlib import Path
    rep = export_model(model, Path(out), (192, 256), 'fused-teacher-untrained', False, None, None, None, None)
    print(json.dumps(rep))


if __name__ == '__main__':
    if sys.argv[1] == 'arith':
        arith(sys.argv[2])
    elif sys.argv[1] == 'export-untrained':
        export_untrained(sys.argv[2])
    elif sys.argv[1] == 'static':
        static(sys.argv[2:])
    else:
        sys.exit(__doc__)
