// onnxruntime-node and onnxruntime-web are peer dependencies of shrink (onnxruntime-node optional,
// so that browser users need not download it): the user's project installs the runtime it uses.
// When one is needed and missing, the error names it and says how to install it, in one line.

/** The peer dependency ranges from package.json, for the messages below. */
export const PEER_RANGES = { 'onnxruntime-node': '^1.30.0', 'onnxruntime-web': '^1.30.0' } as const;

export type PeerName = keyof typeof PEER_RANGES;

/** Thrown when a peer dependency is needed and not installed. */
export class MissingPeerDependencyError extends Error {
  constructor(
    readonly packageName: PeerName,
    why: string,
  ) {
    const install = `npm install ${packageName}@${PEER_RANGES[packageName]}`;
    const offline = packageName === 'onnxruntime-node' ? ' (ONNXRUNTIME_NODE_INSTALL=skip skips its optional CUDA download)' : '';
    super(`${packageName} is not installed: ${why} needs it (a peer dependency of shrink): ${install}${offline}`);
    this.name = 'MissingPeerDependencyError';
  }
}

/** Whether `error` says that `name` itself (not something it imports) could not be found. */
export function isMissingPackage(error: unknown, name: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') return false;
  // Node: "Cannot find module 'onnxruntime-node'" (require) or "Cannot find package 'onnxruntime-web'
  // imported from ..." (import); a missing file inside the package names a path instead.
  return typeof message === 'string' && (message.includes(`'${name}'`) || message.includes(`"${name}"`));
}
