/**
 * TensorFlow.js backend choice, made once per process at run time: the native binding
 * (tfjs-node) when it is installed and loads, else WebAssembly, else plain JS (cpu).
 * tfjs-node is an optionalDependency because its install downloads libtensorflow.
 */
import * as tf from '@tensorflow/tfjs';

export type Backend = 'tensorflow' | 'wasm' | 'cpu';
let ready: Promise<Backend> | undefined;

export function initTf(preferred = process.env.EDGELOOP_TF_BACKEND): Promise<Backend> {
  ready ??= chooseBackend(preferred as Backend | undefined);
  return ready;
}

async function chooseBackend(preferred?: Backend): Promise<Backend> {
  const order: Backend[] = preferred ? [preferred] : ['tensorflow', 'wasm', 'cpu'];
  for (const backend of order) {
    if (await tryBackend(backend)) return backend;
  }
  throw new Error(`TensorFlow.js backend '${preferred}' could not be initialised (try wasm or cpu)`);
}

async function tryBackend(backend: Backend): Promise<boolean> {
  try {
    if (backend === 'tensorflow') {
      // A string specifier keeps bundlers and the type checker from requiring the optional package.
      const nodeBinding = '@tensorflow/tfjs-node';
      await import(nodeBinding);
    } else if (backend === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    return (await tf.setBackend(backend)) && tf.getBackend() === backend;
  } catch {
    return false;
  }
}

export { tf };
