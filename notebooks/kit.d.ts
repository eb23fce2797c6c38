// The kit's types, so that tslab completes and checks every call: the declarations of
// lib/notebook, which `npm run build` copies into .kit/ (tslab reads only this folder).
export * from './.kit/lib/notebook/index';
