// The one TensorFlow.js namespace every module uses; importing it registers the wasm backend.
// Which backend runs is chosen once per process by select.ts.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { tf };
