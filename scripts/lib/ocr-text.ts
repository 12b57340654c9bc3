// Seeded text for the OCR rendering scripts (scripts/make-rec-corpus.ts, scripts/make-det-pages.ts):
// a small generator and random lines of Chinese, English, numbers, dates and prices.
import { mulberry32 } from '../../src/kernels/random.js';

// Common characters of modern Chinese (everyday words, places, numbers, units).
export const HANZI =
  '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切木怕据热'.replace(/\s/g, '');
export const WORDS = ['model', 'compression', 'invoice', 'total', 'order', 'shipped', 'room', 'building', 'speed', 'limit', 'open', 'closed', 'page', 'version', 'error', 'rate', 'weight', 'layer', 'network', 'street', 'station', 'north', 'exit', 'price', 'date', 'account', 'balance', 'number', 'phone', 'email', 'office', 'hotel', 'coffee', 'market', 'floor', 'ticket', 'train', 'gate', 'flight', 'delivery', 'parking', 'water', 'power', 'report', 'summary', 'review', 'data', 'test', 'sample', 'Hello', 'World', 'Beijing', 'Shanghai', 'March', 'April', 'Monday', 'Friday', 'ONNX', 'OCR', 'PDF', 'USB', 'WiFi'];

/** mulberry32 (src/kernels/random.ts): a small seeded generator, so a set is the same on every machine. */
export const random = mulberry32;

/** One line of text: Chinese, English, numbers or a mix. */
export function drawText(rand: () => number): string {
  const pick = <T>(xs: readonly T[] | string): T => xs[Math.floor(rand() * xs.length)] as T;
  const int = (n: number) => Math.floor(rand() * n);
  const hanzi = (n: number) => Array.from({ length: n }, () => pick<string>(HANZI)).join('');
  switch (int(6)) {
    case 0:
    case 1:
      return hanzi(2 + int(6));
    case 2:
      return Array.from({ length: 1 + int(3) }, () => pick(WORDS)).join(' ');
    case 3:
      return `${hanzi(1 + int(3))}${pick(['：', ' ', ''])}${int(10000)}${pick(['元', '号', '米', '', '%'])}`;
    case 4:
      return pick([`${2000 + int(30)}-${1 + int(12)}-${1 + int(28)}`, `$${int(1000)}.${String(int(100)).padStart(2, '0')}`, `No. ${int(100000)}`, `${int(24)}:${String(int(60)).padStart(2, '0')}`, `Tel ${100 + int(900)} ${1000 + int(9000)}`]);
    default:
      return `${pick(WORDS)} ${hanzi(1 + int(4))}`;
  }
}
