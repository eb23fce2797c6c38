/** An object that does not describe a valid Service or EndpointSlice; names the object and field. */
export class ObjectError extends Error {
  override readonly name = 'ObjectError';
  constructor(
    readonly object: string,
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${object}: ${field}: ${problem}`);
  }
}
