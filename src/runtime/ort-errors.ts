// onnxruntime's errors as one line that says the cause. Its messages carry what a C++ developer
// needs (the source file and line, the function's full signature, a status code) around the part
// a user needs ("Unsupported model IR version: 99", "No Op registered for Frobnicate"); this keeps
// the latter, and names the node where onnxruntime gives one.
import type { OrtModule } from './ort-types.js';
import { ModelSession, type SessionOptions } from './session.js';
import type { Model } from '../ir/model.js';

/**
 * The cause in onnxruntime's message, one line: without "Load model from PATH failed:", the
 * "[ONNXRuntimeError] : 1 : FAIL :" code (onnxruntime-web: "ERROR_CODE: 1, ERROR_MESSAGE:"), the
 * C++ source location and signature, and with a node named as `node 'name' (Op): ...`.
 */
export function ortCause(error: unknown): string {
  let message = (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ').trim();
  message = message
    .replace(/\[ONNXRuntimeError\] : \d+ : \w+ :\s*/g, '')
    .replace(/^Can't create a session\. ERROR_CODE: \d+, ERROR_MESSAGE:\s*/, '')
    .replace(/^Load model from .*? failed:\s*/, '');
  message = stripSourceLocations(message);
  // Load errors: This is an invalid model. In Node, ("relu1", Frobnicate, "", -1) : (inputs) -> (outputs) , Error CAUSE
  const invalid = /In Node, \("([^"]*)", ([\w.]+), "([^"]*)", -?\d+\) : .*? , Error (.*)$/.exec(message);
  if (invalid !== null) return `node '${invalid[1]}' (${invalid[3] === '' ? '' : `${invalid[3]}:`}${invalid[2]}): ${invalid[4]}`;
  // Run errors: Non-zero status code returned while running Gemm node. Name:'fc1' Status Message: CAUSE
  const running = /^Non-zero status code returned while running (\S+) node\. Name:'([^']*)' Status Message:\s*(.*)$/.exec(message);
  if (running !== null) return `node '${running[2]}' (${running[1]}): ${running[3]}`;
  return message.replace(/^This is an invalid model\.\s*/, '') || 'unknown error';
}

/**
 * Removes `/onnxruntime_src/onnxruntime/core/graph/model.cc:202 onnxruntime::Model::Model(args...) `:
 * a C++ source path with a line number (the build folder differs between onnxruntime-node and
 * -web), then a signature whose argument list is matched to its closing parenthesis (arguments
 * hold parentheses and commas of their own).
 */
function stripSourceLocations(message: string): string {
  const location = /[^\s(]*\.(?:cc|cpp|h|hpp):\d+ /g;
  let out = '';
  let from = 0;
  for (let match = location.exec(message); match !== null; match = location.exec(message)) {
    out += message.slice(from, match.index);
    let at = match.index + match[0].length;
    const open = message.indexOf('(', at);
    // The signature is a qualified name up to its '(' (templates aside), maybe after a return type.
    if (open >= 0 && /^(?:[\w:*&]+ )?[\w:~]+$/.test(message.slice(at, open).replace(/<[^>]*>/g, ''))) {
      let depth = 0;
      for (at = open; at < message.length; at++) {
        if (message[at] === '(') depth++;
        else if (message[at] === ')' && --depth === 0) break;
      }
      at++;
      const rest = /^( const)?\s*/.exec(message.slice(at));
      at += rest?.[0].length ?? 0;
    }
    from = at;
    location.lastIndex = at;
  }
  return (out + message.slice(from)).trim();
}

/** onnxruntime could not create a session; the message is the cause, one line, naming what failed to load. */
export class SessionLoadError extends Error {
  constructor(
    message: string,
    /** What was being loaded, in words ("the model", "the training graph", "the teacher"). */
    readonly subject: string,
  ) {
    super(message);
  }
}

/**
 * ModelSession.create, with a failure to load thrown as a SessionLoadError: "onnxruntime cannot
 * load SUBJECT: CAUSE".
 */
export async function openSession(ort: OrtModule, model: Model | Uint8Array | string, options: SessionOptions = {}, subject = 'the model'): Promise<ModelSession> {
  try {
    return await ModelSession.create(ort, model, options);
  } catch (error) {
    throw new SessionLoadError(`onnxruntime cannot load ${subject}: ${ortCause(error)}`, subject);
  }
}
