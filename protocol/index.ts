export * from './errors.js';
export * from './packet.js';
export * from './frames.js';
export * from './codec.js';
export * from './transport.js';
export * from './socket-transport.js';
export * from './limits.js';
