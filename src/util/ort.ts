/**
 * The one way LesionFuse loads onnxruntime-node. Importing this module first turns off the telemetry that
 * onnxruntime's native library otherwise starts in every process that creates an environment (files under
 * ~/.cache/Microsoft, /tmp/mat-debug-<pid>.log, and a lookup of a Microsoft host in long runs): the switch is
 * the environment variable ORT_DISABLE_TELEMETRY, which the native library reads when it loads, so it must be
 * set before `onnxruntime-node` is evaluated. ES modules evaluate their imports in order, so `./telemetry-off.js`
 * runs before the re-export below. Every file in src/, bench/ and test/ imports onnxruntime from here (it lives in util/ so that every layer, src/onnx included, may import it).
 */
import './telemetry-off.js';

export * from 'onnxruntime-node';
