/**
 * What the device uses of `@tensorflow/tfjs`, for the package bundle (build.ts aliases the
 * union package to this file): core ops, layers models and the cpu backend (the wasm backend
 * comes through shared/tf.ts). The union package adds the WebGL backend, the graph-model
 * converter and tfjs-data, some 9 MB of resident memory a gateway never uses.
 */
import '@tensorflow/tfjs-backend-cpu';

export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
