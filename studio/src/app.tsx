// The studio page: drop a model, see what it holds, pick or edit a recipe, run it in the worker,
// see how close the result stays to the original on the user's own samples, download it.
// The page only renders; the worker (worker.ts) does the work.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { InspectReport } from '../../src/inspect/inspect.js';
import { BarList, Columns } from './charts.js';
import { formatBytes, formatCount, formatDb, formatDims, numeric } from './format.js';
import type { DroppedFile, FromWorker, ImageScaling, RecipeProblem, RunProgress, RunResult, ToWorker } from './protocol.js';
import { BUILT_IN_RECIPES } from './recipes.js';
import { RecipeEditor } from './recipe-editor.js';
import { extensionOf, SAMPLE_EXTENSIONS } from './samples.js';

type RunState = { kind: 'idle' } | { kind: 'running'; progress?: RunProgress } | { kind: 'done'; result: RunResult; url: string } | { kind: 'failed'; message: string };

/** Generated inputs when the user gives no samples. */
const GENERATED_SAMPLES = 8;
const SCALINGS: { value: ImageScaling; label: string }[] = [
  { value: 'minus-one-to-one', label: 'pixels to [-1, 1] (PP-OCR)' },
  { value: 'zero-to-one', label: 'pixels to [0, 1]' },
  { value: 'imagenet', label: 'ImageNet mean/std' },
  { value: 'zero-to-255', label: 'raw 0-255' },
];

function startWorker(): Worker {
  return new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
}

export function App() {
  const worker = useRef<Worker>();
  const [engine, setEngine] = useState<{ threads: number; isolated: boolean; ortVersion: string } | { error: string } | undefined>();
  const [model, setModel] = useState<{ name: string; report: InspectReport } | undefined>();
  /** Sizes of the inputs' symbolic dims, for generated inputs (the user may change them). */
  const [dims, setDims] = useState<Record<string, number>>({});
  const [loading, setLoading] = useState<string | undefined>();
  const [loadError, setLoadError] = useState<string | undefined>();
  const [samples, setSamples] = useState<DroppedFile[]>([]);
  const [scaling, setScaling] = useState<ImageScaling>('minus-one-to-one');
  const [recipeId, setRecipeId] = useState(BUILT_IN_RECIPES[0].id);
  const [recipeText, setRecipeText] = useState(BUILT_IN_RECIPES[0].text);
  const [problem, setProblem] = useState<RecipeProblem | undefined>();
  const [run, setRun] = useState<RunState>({ kind: 'idle' });
  const checkId = useRef(0);

  /** The model's bytes, kept so a stopped worker's replacement can load it again. */
  const modelFile = useRef<DroppedFile>();

  /** Starts a worker with onnxruntime-web, and loads the current model into it if there is one. */
  function connect(): Worker {
    const w = startWorker();
    worker.current = w;
    w.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      switch (message.type) {
        case 'ready':
          setEngine({ threads: message.threads, isolated: message.isolated, ortVersion: message.ortVersion });
          return;
        case 'loaded':
          setLoading(undefined);
          setModel({ name: message.report.source ?? 'model.onnx', report: message.report });
          setDims(message.dims);
          return;
        case 'checked':
          if (message.id === checkId.current) setProblem(message.problem);
          return;
        case 'progress':
          setRun({ kind: 'running', progress: message.progress });
          return;
        case 'result': {
          const url = URL.createObjectURL(new Blob([message.result.bytes], { type: 'application/octet-stream' }));
          setRun((old) => {
            if (old.kind === 'done') URL.revokeObjectURL(old.url);
            return { kind: 'done', result: message.result, url };
          });
          return;
        }
        case 'error':
          if (message.stage === 'init') setEngine({ error: message.message });
          else if (message.stage === 'load') {
            setLoading(undefined);
            setLoadError(message.message);
          } else setRun({ kind: 'failed', message: message.message });
          return;
      }
    };
    w.onerror = (event) => setEngine({ error: `the worker failed: ${event.message}` });
    send({ type: 'init', ortBase: new URL('ort/', document.baseURI).href });
    const file = modelFile.current;
    if (file !== undefined) send({ type: 'load', file: { name: file.name, bytes: file.bytes.slice(0) } });
    return w;
  }

  useEffect(() => {
    const w = connect();
    return () => w.terminate();
  }, []);

  /** Stops a running recipe: onnxruntime cannot be interrupted, so the worker goes and a new one takes the model. */
  function stop(): void {
    worker.current?.terminate();
    setEngine(undefined);
    setRun({ kind: 'failed', message: 'stopped: the recipe did not finish' });
    connect();
  }

  function send(message: ToWorker, transfer: Transferable[] = []): void {
    worker.current?.postMessage(message, transfer);
  }

  useEffect(() => {
    checkId.current += 1;
    const id = checkId.current;
    const timer = setTimeout(() => send({ type: 'check', id, text: recipeText }), 120);
    return () => clearTimeout(timer);
  }, [recipeText]);

  async function takeFiles(files: readonly File[]): Promise<void> {
    const models = files.filter((f) => extensionOf(f.name) === '.onnx');
    const sampleFiles = files.filter((f) => SAMPLE_EXTENSIONS.includes(extensionOf(f.name)));
    const other = files.find((f) => !models.includes(f) && !sampleFiles.includes(f));
    if (other !== undefined) {
      setLoadError(`${other.name}: not an .onnx model or a sample file (images, .wav, .npy, .npz)`);
      return;
    }
    if (sampleFiles.length > 0) setSamples(await Promise.all(sampleFiles.map(async (f) => ({ name: f.name, bytes: await f.arrayBuffer() }))));
    if (models.length > 0) {
      const file = models[0];
      setLoadError(undefined);
      setModel(undefined);
      setRun({ kind: 'idle' });
      setLoading(file.name);
      const bytes = await file.arrayBuffer();
      modelFile.current = { name: file.name, bytes };
      send({ type: 'load', file: { name: file.name, bytes: bytes.slice(0) } });
    }
  }

  function startRun(): void {
    setRun({ kind: 'running' });
    // Copies: the page keeps its samples for the next run.
    send({ type: 'run', text: recipeText, samples: samples.map((s) => ({ name: s.name, bytes: s.bytes.slice(0) })), scaling, generated: { count: GENERATED_SAMPLES, dims } });
  }

  const ready = engine !== undefined && !('error' in engine);
  return (
    <div class="page">
      <header>
        <h1>shrink studio</h1>
        <span class="tagline">compress an ONNX model and check it, all in this tab: nothing is uploaded</span>
        <span class="engine" data-testid="engine">
          {engine === undefined ? 'starting onnxruntime-web…' : 'error' in engine ? engine.error : `onnxruntime-web ${engine.ortVersion} in a worker · ${engine.threads} thread${engine.threads === 1 ? '' : 's'}${engine.isolated ? ' (cross-origin isolated)' : ' (not isolated: 1 thread)'}`}
        </span>
      </header>
      <DropZone onFiles={takeFiles} model={model?.name} loading={loading} samples={samples} onClearSamples={() => setSamples([])} />
      {loadError !== undefined && (
        <p class="error" data-testid="load-error">
          {loadError}
        </p>
      )}
      {model !== undefined && <InspectView report={model.report} />}
      {model !== undefined && (
        <section class="panel">
          <h2>Recipe</h2>
          <div class="row">
            <label>
              built-in{' '}
              <select
                data-testid="recipe-select"
                value={recipeId}
                onChange={(e) => {
                  const chosen = BUILT_IN_RECIPES.find((r) => r.id === e.currentTarget.value);
                  if (chosen) {
                    setRecipeId(chosen.id);
                    setRecipeText(chosen.text);
                  }
                }}
              >
                {BUILT_IN_RECIPES.map((r) => (
                  <option key={r.id} value={r.id}>
                    {r.label}
                  </option>
                ))}
                <option value="custom" disabled>
                  (edited)
                </option>
              </select>
            </label>
            <label>
              images{' '}
              <select value={scaling} onChange={(e) => setScaling(e.currentTarget.value as ImageScaling)}>
                {SCALINGS.map((s) => (
                  <option key={s.value} value={s.value}>
                    {s.label}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <RecipeEditor
            text={recipeText}
            problem={problem}
            onChange={(text) => {
              setRecipeText(text);
              if (!BUILT_IN_RECIPES.some((r) => r.text === text)) setRecipeId('custom');
            }}
          />
          <div class="row">
            <button type="button" data-testid="run" disabled={!ready || problem !== undefined || run.kind === 'running'} onClick={startRun}>
              Run recipe
            </button>
            <span class="muted">
              on {samples.length > 0 ? samples.map((s) => s.name).join(', ') : `${GENERATED_SAMPLES} generated inputs (drop images, audio or .npy/.npz for real ones)`}
            </span>
          </div>
          {samples.length === 0 && Object.keys(dims).length > 0 && (
            <div class="row dims" data-testid="dims">
              <span class="muted">sizes of the generated inputs' symbolic dims:</span>
              {Object.entries(dims).map(([name, size]) => (
                <label key={name}>
                  {name}{' '}
                  <input type="number" min={1} value={size} data-dim={name} onChange={(e) => setDims({ ...dims, [name]: Math.max(1, Math.round(Number(e.currentTarget.value)) || 1) })} />
                </label>
              ))}
            </div>
          )}
          <RunView run={run} onStop={stop} />
        </section>
      )}
      {run.kind === 'done' && <Results result={run.result} url={run.url} />}
    </div>
  );
}

function DropZone(props: { onFiles: (files: File[]) => void; model?: string; loading?: string; samples: DroppedFile[]; onClearSamples: () => void }) {
  const [over, setOver] = useState(false);
  const picker = useRef<HTMLInputElement>(null);
  return (
    <section
      class={over ? 'drop over' : 'drop'}
      data-testid="drop-zone"
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        props.onFiles([...(e.dataTransfer?.files ?? [])]);
      }}
    >
      <p class="drop-title">{props.loading !== undefined ? `reading ${props.loading}…` : props.model !== undefined ? props.model : 'Drop an ONNX model here'}</p>
      <p class="muted">
        and, to compare on your own inputs, images, .wav audio or an .npy/.npz of samples ·{' '}
        <button type="button" class="link" onClick={() => picker.current?.click()}>
          choose files
        </button>
      </p>
      {props.samples.length > 0 && (
        <p class="samples" data-testid="samples">
          samples: {props.samples.map((s) => `${s.name} (${formatBytes(s.bytes.byteLength)})`).join(', ')}{' '}
          <button type="button" class="link" onClick={props.onClearSamples}>
            clear
          </button>
        </p>
      )}
      <input
        ref={picker}
        type="file"
        multiple
        data-testid="file-input"
        accept=".onnx,.npy,.npz,.wav,image/*"
        hidden
        onChange={(e) => {
          props.onFiles([...(e.currentTarget.files ?? [])]);
          e.currentTarget.value = '';
        }}
      />
    </section>
  );
}

function InspectView({ report }: { report: InspectReport }) {
  const ops = [...report.ops].sort((a, b) => b.count - a.count);
  const layers = report.layers;
  const heaviest = layers.reduce((m, l) => Math.max(m, l.parameters), 0);
  return (
    <section class="panel" data-testid="inspect">
      <h2>Model</h2>
      <div class="grid">
        <table class="facts">
          <tbody>
            <Fact label="file" value={`${report.source ?? '?'} · ${formatBytes(report.file_bytes ?? 0)}`} />
            <Fact label="producer" value={report.producer.name === '' ? '–' : `${report.producer.name} ${report.producer.version}`} />
            <Fact label="IR · opsets" value={`${report.ir_version} · ${report.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')}`} />
            <Fact label="nodes" value={formatCount(report.nodes)} testId="nodes" />
            <Fact label="parameters" value={`${formatCount(report.parameters.elements)} (${formatBytes(report.parameters.bytes)})`} testId="parameters" />
            <Fact label="weights stored" value={`${report.storage.initializer.tensors} initializers, ${report.storage.constant_node.tensors} Constant nodes${report.storage.external.tensors > 0 ? `, ${report.storage.external.tensors} external` : ''}`} />
            {report.inputs.map((v) => (
              <Fact key={`in-${v.name}`} label="input" value={`${v.name} ${v.dtype ?? '?'} ${formatDims(v.shape)}`} />
            ))}
            {report.outputs.map((v) => (
              <Fact key={`out-${v.name}`} label="output" value={`${v.name} ${v.dtype ?? '?'} ${formatDims(v.shape)}`} />
            ))}
          </tbody>
        </table>
        <div>
          <h3>Op histogram</h3>
          <BarList testId="op-histogram" bars={ops.map((o) => ({ label: o.op, value: o.count }))} format={(v) => String(v)} />
        </div>
      </div>
      <h3>Weights per layer ({layers.length} layers, network order)</h3>
      <Columns
        testId="weights-chart"
        width={1140}
        height={160}
        bars={layers.map((l) => ({ label: l.node, value: l.parameters, title: `${l.node} (${l.op_type}): ${formatCount(l.parameters)} parameters`, alert: l.parameters === heaviest }))}
        format={(v) => formatCount(Math.round(v))}
      />
    </section>
  );
}

function Fact({ label, value, testId }: { label: string; value: string; testId?: string }) {
  return (
    <tr>
      <th>{label}</th>
      <td data-testid={testId}>{value}</td>
    </tr>
  );
}

function RunView({ run, onStop }: { run: RunState; onStop: () => void }) {
  if (run.kind === 'failed') {
    return (
      <p class="error" data-testid="run-error">
        {run.message}
      </p>
    );
  }
  if (run.kind !== 'running') return null;
  const p = run.progress;
  const share = p === undefined ? 0 : Math.min(1, (p.step - 1 + (p.total ? (p.done ?? 0) / p.total : 0)) / (p.steps + 1));
  return (
    <div class="progress" data-testid="progress">
      <div class="progress-bar">
        <div style={{ width: `${(share * 100).toFixed(1)}%` }} />
      </div>
      <button type="button" class="secondary" data-testid="stop" onClick={onStop}>
        Stop
      </button>
      <span>{p === undefined ? 'starting…' : `${p.step <= p.steps ? `step ${p.step} of ${p.steps}: ${p.name}` : p.name}${p.task ? ` · ${p.task}${p.total ? ` ${p.done ?? 0}/${p.total}` : ''}` : ''}`}</span>
    </div>
  );
}

function Results({ result, url }: { result: RunResult; url: string }) {
  const { report, comparison } = result;
  const layers = (comparison.layers ?? []).filter((l) => numeric(l.isolated_sqnr_db) !== Infinity || l.drop_db !== null);
  const worst = layers.slice(0, 12);
  const byOrder = [...(comparison.layers ?? [])].sort((a, b) => a.order - b.order);
  const ownDb = (l: (typeof byOrder)[number]) => Math.min(150, numeric(l.isolated_sqnr_db ?? null));
  return (
    <section class="panel" data-testid="results">
      <h2>Result</h2>
      <p class={report.verdict.status === 'close' ? 'verdict ok' : 'verdict warn'} data-testid="verdict">
        {report.verdict.message}
      </p>
      <table class="metrics" data-testid="fidelity">
        <thead>
          <tr>
            <th>output</th>
            <th>cosine</th>
            <th>top-1 agreement</th>
            <th>SQNR</th>
            <th>max |diff|</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(comparison.outputs).map(([name, o]) => (
            <tr key={name} data-output={name}>
              <td>{name}</td>
              <td data-metric="cosine" data-value={String(numeric(o.cosine))}>
                {numeric(o.cosine).toFixed(6)}
              </td>
              <td data-metric="top1" data-value={o.top1_agreement === undefined ? '' : String(o.top1_agreement)}>
                {o.top1_agreement === undefined ? '–' : `${(o.top1_agreement * 100).toFixed(1)}% of ${o.rows}`}
              </td>
              <td data-metric="sqnr" data-value={String(numeric(o.sqnr_db))}>
                {formatDb(o.sqnr_db)}
              </td>
              <td data-metric="max-abs" data-value={String(numeric(o.max_abs))}>
                {numeric(o.max_abs).toExponential(2)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted" data-testid="samples-used">
        on {comparison.samples} samples: {result.samples}
        {comparison.warnings.length > 0 ? ` · ${comparison.warnings[0]}` : ''}
      </p>
      <div class="row sizes" data-testid="sizes" data-before={report.size.before} data-after={report.size.after}>
        <span>
          size {formatBytes(report.size.before)} → <b>{formatBytes(report.size.after)}</b> ({report.size.ratio.toFixed(3)}x)
        </span>
        <span class="muted">in {(result.ms / 1000).toFixed(1)} s</span>
        <a class="button" data-testid="download" href={url} download={result.fileName}>
          Download {result.fileName}
        </a>
      </div>
      {worst.length > 0 && (
        <div class="grid">
          <div>
            <h3>Layers making the most error (own SQNR, lowest first)</h3>
            <BarList
              testId="layer-ranking"
              bars={worst.map((l) => ({ label: l.node, value: ownDb(l), title: `${l.node} (${l.op}): own SQNR ${formatDb(l.isolated_sqnr_db)}, output SQNR ${formatDb(l.sqnr_db)}`, alert: ownDb(l) < 30 }))}
              format={(v) => `${v.toFixed(1)} dB`}
            />
          </div>
          <div>
            <h3>Error per layer, network order (SQNR of each value)</h3>
            <Columns testId="layer-sqnr" height={180} bars={byOrder.map((l) => ({ label: l.node, value: Math.max(0, Math.min(150, numeric(l.sqnr_db))), title: `${l.node} (${l.op}): ${formatDb(l.sqnr_db)}` }))} format={(v) => `${v.toFixed(0)} dB`} />
          </div>
        </div>
      )}
      {report.stages.length > 1 && (
        <table class="metrics">
          <thead>
            <tr>
              <th>after</th>
              <th>bytes</th>
              <th>compression</th>
              <th>cosine</th>
            </tr>
          </thead>
          <tbody>
            {report.stages.map((s, i) => (
              <tr key={i}>
                <td>{s.step}</td>
                <td>{formatBytes(s.bytes)}</td>
                <td>{s.compression.toFixed(2)}x</td>
                <td>{s.cosine === undefined ? '–' : numeric(s.cosine).toFixed(6)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
