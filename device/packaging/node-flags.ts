/**
 * The V8 flags every way of running the gateway package gives node: the systemd unit, the
 * Greengrass recipe and the benches that run the package. They must be on node's command line:
 * V8 sizes its heap when the process starts, and `v8.setFlagsFromString` later changes nothing.
 *
 * `--max-semi-space-size=4` (MB): a gateway's garbage is short-lived (each reading's objects
 * live one batch), so a young generation of 4 MB semi-spaces, not V8's default of up to 16,
 * collects it as well and holds far less. Rows at 5,000 readings/s for 60 s (bench/README.md):
 * peak RSS 125 MB instead of 163, for 8% more CPU per result.
 *
 * `--expose-gc`: the device runs a full collection once its RSS passes a budget
 * (device/platform/heap-trim.ts); V8 alone leaves promoted garbage for minutes.
 */
export const GATEWAY_NODE_FLAGS = ['--max-semi-space-size=4', '--expose-gc'] as const;
