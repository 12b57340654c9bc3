// The recipe text (YAML or JSON) with line numbers; the line a problem points at is marked in the
// gutter and the problem is shown under the text. The textarea grows with the text, so the
// gutter never has to follow a scroll.
import type { RecipeProblem } from './protocol.js';

export function RecipeEditor({ text, problem, onChange }: { text: string; problem?: RecipeProblem; onChange: (text: string) => void }) {
  const lines = text.split('\n').length;
  return (
    <div>
      <div class="editor">
        <pre class="gutter" aria-hidden="true">
          {Array.from({ length: lines }, (_, i) => (
            <span key={i} class={problem?.line === i + 1 ? 'bad-line' : undefined} data-bad-line={problem?.line === i + 1 ? 'true' : undefined}>
              {i + 1}
              {'\n'}
            </span>
          ))}
        </pre>
        <textarea data-testid="recipe-text" spellcheck={false} rows={Math.max(6, lines + 1)} value={text} onInput={(e) => onChange(e.currentTarget.value)} />
      </div>
      {problem !== undefined && (
        <p class="error" data-testid="recipe-problem" data-line={problem.line ?? ''}>
          {problem.line === undefined ? '' : `line ${problem.line}: `}
          {problem.message}
        </p>
      )}
    </div>
  );
}
