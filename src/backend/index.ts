export { customOp, linear, matmul, bmm, batchedMatMulPlain, frozenTranspose, clearTransposeCache, type LinearOptions } from './linear.js';
