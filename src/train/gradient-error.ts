/** A problem building the backward graph; the message names the node or value and what is wrong. */
export class GradientError extends Error {
  override name = 'GradientError';
}
