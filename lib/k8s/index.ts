export * from './types.ts';
export * from './errors.ts';
export * from './read.ts';
export * from './write.ts';
export * from './resolve.ts';
export * from './synthetic.ts';
export * from './addresses.ts';
export * from './workshop.ts';
