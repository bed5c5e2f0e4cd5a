export * from './limits.js';
export * from './body.js';
export * from './outbox.js';
export * from './inbox.js';
export * from './channel.js';
export * from './hold-policy.js';
export * from './request-policy.js';
