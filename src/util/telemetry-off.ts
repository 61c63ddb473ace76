/**
 * Side-effect module: make sure onnxruntime's native telemetry stays off in this process and in every child
 * process it starts (they inherit the environment). A user who really wants telemetry cannot turn it on through
 * LesionFuse: patient images and model metadata must never leave the machine.
 */
process.env.ORT_DISABLE_TELEMETRY = '1';

export const TELEMETRY_DISABLED = true;
