/**
 * LesionFuse's ONNX layer: the typed IR, reading and writing ModelProto
 * (byte-for-byte round trips, external data), tensor codecs, graph queries, a
 * graph builder, shape inference, a checker and a model summary.
 */
export * from './ir.js';
export * from './metadata.js';
export * from './tensor.js';
export * from './io.js';
export * from './graph.js';
export * from './builder.js';
export * from './shape.js';
export * from './check.js';
export * from './inspect.js';
