// The lesson (web/learn.html): eight steps that take MORE apart, and the class challenge. Each step is
// data — a title, an explanation with TeX (typeset by KaTeX, served from web/vendor/katex), a widget that
// runs the project's real code in WebAssembly (web/pkg: keys, encryption, the attacks of
// more_core::attack) and an exercise the page checks, with a hint and a worked solution. The exercises use
// fixed numbers (the answers are in docs/teaching.md); only the challenge step talks to the server.
// Progress is kept in localStorage under PROGRESS_KEY. window.lesson = { ready, progress } for the tests.

import init, * as wasm from './pkg/more_wasm.js';
import { drawGray } from './render.js';
import { $ } from './ui.js';
import { challengeCiphertext, challengeInfo, submitAnswer, teacherRequest } from './api.js';

const PROGRESS_KEY = 'more-lesson-progress-v1';

// ---- small helpers -------------------------------------------------------------------------------------

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'html') e.innerHTML = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};
const fmt = (x, d = 4) => (Math.abs(x) < 1e-9 ? '0' : (+x.toFixed(d)).toString());
const mat = (c) => `\\begin{pmatrix}${fmt(c[0], 3)} & ${fmt(c[1], 3)}\\\\ ${fmt(c[2], 3)} & ${fmt(c[3], 3)}\\end{pmatrix}`;

/** Typesets every element with data-tex (inline) or class tex-display (display) under root. */
function typeset(root) {
  if (!window.katex) return;
  for (const e of root.querySelectorAll('[data-tex]')) {
    window.katex.render(e.dataset.tex, e, { throwOnError: false, displayMode: e.classList.contains('tex-display') });
  }
}
const tex = (t) => `<span data-tex="${t.replace(/"/g, '&quot;')}"></span>`;
const texd = (t) => `<div class="tex-display" data-tex="${t.replace(/"/g, '&quot;')}"></div>`;

function numberInput(id, label, value = '') {
  return el('label', { for: id }, label, el('input', { type: 'number', id, step: 'any', value, inputmode: 'decimal' }));
}
const num = (id) => parseFloat($(id).value);
function output(id) {
  return el('p', { class: 'out', id, 'aria-live': 'polite' });
}

// One key for the widgets (a fixed seed: the same numbers for every student, still a real MORE key).
let key;
const encrypt = (values) => key.encrypt(Float32Array.from(values), Uint32Array.from([values.length]));

// ---- the steps -----------------------------------------------------------------------------------------

// The example of steps 1–7: S = [[2, 1], [1, 1]], S⁻¹ = [[1, −1], [−1, 2]].
const S = '\\begin{pmatrix}2&1\\\\1&1\\end{pmatrix}';
const SINV = '\\begin{pmatrix}1&-1\\\\-1&2\\end{pmatrix}';
const C1 = '\\begin{pmatrix}1&4\\\\-2&7\\end{pmatrix}';
const C2 = '\\begin{pmatrix}5&-6\\\\3&-4\\end{pmatrix}';

const STEPS = [
  {
    id: 'by-hand',
    title: 'Encrypt one number by hand',
    text: `<p>MORE encrypts a real number ${tex('m')} as a 2×2 matrix. The secret key is an invertible matrix
      ${tex('S')}; each encryption draws a fresh random number ${tex('r')}:</p>
      ${texd('C = S \\begin{pmatrix} m & 0 \\\\ 0 & r \\end{pmatrix} S^{-1}')}
      <p>Decryption undoes the change of basis: ${tex('S^{-1} C S = \\operatorname{diag}(m, r)')}, and the
      top-left entry is the message.</p>`,
    widget(box) {
      box.append(
        el('div', { class: 'row' }, numberInput('w1-m', 'Message m', '3'),
          el('button', { type: 'button', id: 'w1-go', onclick: () => {
            const wire = encrypt([num('w1-m')]);
            const e = wasm.attackEigenvalues(wire, 0);
            $('w1-out').innerHTML = `${tex(`C = ${mat(e.ciphertext)}`)} — decrypts to ${fmt(key.decrypt(wire)[0])}`;
            typeset($('w1-out'));
          } }, 'Encrypt with the page’s key')),
        output('w1-out'),
      );
    },
    exercise: {
      kind: 'numbers',
      prompt: `With ${tex(`S = ${S}`)} (so ${tex(`S^{-1} = ${SINV}`)}), encrypt ${tex('m = 3')} with the random
        number ${tex('r = 5')}. Enter the four entries of ${tex('C')}.`,
      fields: [['c00', 1], ['c01', 4], ['c10', -2], ['c11', 7]],
      tol: 1e-6,
      hint: `First ${tex('S\\,\\operatorname{diag}(3, 5)')}: multiply the columns of ${tex('S')} by 3 and 5.`,
      solution: `${texd(`S\\,\\operatorname{diag}(3,5) = \\begin{pmatrix}6&5\\\\3&5\\end{pmatrix},\\quad
        \\begin{pmatrix}6&5\\\\3&5\\end{pmatrix} ${SINV} = ${C1}`)}<p>Check: the trace is 8 = 3 + 5 and the
        determinant 15 = 3 · 5.</p>`,
    },
  },
  {
    id: 'homomorphic',
    title: 'Homomorphic add and multiply',
    text: `<p>Ciphertexts under one key share ${tex('S')}, so sums and products of matrices are sums and
      products of the messages — the server computes on data it cannot read:</p>
      ${texd('C_1 + C_2 = S\\begin{pmatrix} m_1 + m_2 & 0\\\\ 0 & r_1 + r_2\\end{pmatrix}S^{-1},\\qquad C_1 C_2 = S\\begin{pmatrix} m_1 m_2 & 0\\\\ 0 & r_1 r_2\\end{pmatrix}S^{-1}')}
      <p>This is <em>ring-only</em> work: it uses only matrix addition and multiplication, never the 2×2
      structure.</p>`,
    widget(box) {
      box.append(
        el('div', { class: 'row' }, numberInput('w2-a', 'm₁', '1.5'), numberInput('w2-b', 'm₂', '-2'),
          el('button', { type: 'button', id: 'w2-go', onclick: () => {
            const wire = encrypt([num('w2-a'), num('w2-b')]);
            const [sum, prod] = key.decrypt(wasm.homomorphicPair(wire, 0, 1));
            $('w2-out').textContent = `C₁ + C₂ decrypts to ${fmt(sum)}; C₁ · C₂ decrypts to ${fmt(prod)} (computed without the key)`;
          } }, 'Add and multiply the ciphertexts')),
        output('w2-out'),
      );
    },
    exercise: {
      kind: 'numbers',
      prompt: `Under the same ${tex('S')}, ${tex(`C_1 = ${C1}`)} encrypts 3 and ${tex(`C_2 = ${C2}`)} encrypts 2.
        What do ${tex('C_1 + C_2')} and ${tex('C_1 C_2')} decrypt to?`,
      fields: [['C₁ + C₂ decrypts to', 5], ['C₁ · C₂ decrypts to', 6]],
      tol: 1e-6,
      hint: 'You do not need the matrices: the messages add and multiply.',
      solution: `<p>${tex('3 + 2 = 5')} and ${tex('3 \\cdot 2 = 6')}. With the matrices:
        ${tex(`C_1 C_2 = \\begin{pmatrix}17&-22\\\\11&-16\\end{pmatrix}`)}, whose trace ${tex('1 = 6 + (-5)')} and
        determinant ${tex('-30 = 6 \\cdot (-5)')} show the messages 6 and ${tex('r_1 r_2 = 5 \\cdot (-1)')}.</p>`,
    },
  },
  {
    id: 'relu',
    title: 'Why ReLU needs the eigenvalues',
    text: `<p>A neural network also needs non-linear functions such as ${tex('\\mathrm{ReLU}(x) = \\max(x, 0)')},
      which no sum or product gives. The published way to apply one to a ciphertext is through its
      eigen-decomposition — the server computes the eigenvalues ${tex('\\{m, r\\}')} of ${tex('C')} and applies
      the function to each:</p>
      ${texd('f(C) = S\\begin{pmatrix} f(m) & 0\\\\ 0 & f(r)\\end{pmatrix}S^{-1}')}
      <p>That uses the 2×2 structure, and it means the server <em>holds the eigenvalues</em> — one of them is
      the message.</p>`,
    widget(box) {
      box.append(
        el('div', { class: 'row' }, numberInput('w3-m', 'Message m', '-0.75'),
          el('button', { type: 'button', id: 'w3-go', onclick: () => {
            const e = wasm.attackEigenvalues(encrypt([num('w3-m')]), 0);
            const { high: hi, low: lo } = e;
            $('w3-out').textContent = `eigenvalues the server computes: ${fmt(hi)} and ${fmt(lo)}; ReLU applied to each: ${fmt(Math.max(hi, 0))} and ${fmt(Math.max(lo, 0))}`;
          } }, 'Apply ReLU the published way')),
        output('w3-out'),
      );
    },
    exercise: {
      kind: 'choice',
      prompt: 'Why can a MORE server not evaluate ReLU with ring operations alone?',
      options: [
        'ReLU needs the secret key S.',
        'ReLU is not a polynomial; to apply it the server works with the eigenvalues of C — and so sees the message.',
        'ReLU is too slow on 2×2 matrices.',
        'ReLU would make the random number r negative.',
      ],
      answer: 1,
      hint: 'Which functions do sums and products of matrices give you?',
      solution: '<p>Sums and products give polynomials only. ReLU is not one, so it is applied through the eigenvalues — and one eigenvalue is the message itself.</p>',
    },
  },
  {
    id: 'trace-det',
    title: 'Trace and determinant',
    text: `<p>You do not even need an eigen-solver. Similar matrices share trace and determinant, so from the
      ciphertext alone:</p>
      ${texd('\\operatorname{tr} C = m + r,\\qquad \\det C = m\\,r,\\qquad \\{m, r\\} = \\frac{\\operatorname{tr} C \\pm \\sqrt{(\\operatorname{tr} C)^2 - 4\\det C}}{2}')}
      <p>Every ciphertext hands out the pair ${tex('\\{m, r\\}')}; only which one is the message is unknown.</p>`,
    widget(box) {
      box.append(
        el('div', { class: 'row' }, numberInput('w4-m', 'Message m', '0.42'),
          el('button', { type: 'button', id: 'w4-go', onclick: () => {
            const e = wasm.attackEigenvalues(encrypt([num('w4-m')]), 0);
            $('w4-out').textContent = `trace ${fmt(e.trace)}, determinant ${fmt(e.det)} → eigenvalues ${fmt(e.high)} and ${fmt(e.low)}`;
          } }, 'Encrypt, then attack')),
        output('w4-out'),
      );
    },
    exercise: {
      kind: 'numbers',
      prompt: `A server receives ${tex('C = \\begin{pmatrix}4&1\\\\-6&-1\\end{pmatrix}')}. Enter its two eigenvalues
        (the message is one of them), larger first.`,
      fields: [['larger', 2], ['smaller', 1]],
      tol: 1e-3,
      hint: `Trace ${tex('4 + (-1)')}, determinant ${tex('4\\cdot(-1) - 1\\cdot(-6)')}.`,
      solution: `<p>${tex('\\operatorname{tr} C = 3')}, ${tex('\\det C = 2')}, so the eigenvalues solve
        ${tex('\\lambda^2 - 3\\lambda + 2 = 0')}: ${tex('\\lambda = 2')} and ${tex('\\lambda = 1')}.</p>`,
    },
  },
  {
    id: 'eigenbasis',
    title: 'The shared eigenbasis: recover this image',
    text: `<p>Every ciphertext of one key has the same eigenvectors: the columns ${tex('s_0, s_1')} of
      ${tex('S')}. One ciphertext with distinct eigenvalues gives them; then for any other ciphertext the value
      on each lane is one division:</p>
      ${texd('C\\,s_0 = m\\,s_0 \\quad\\Rightarrow\\quad m = \\frac{(C\\,s_0)_k}{(s_0)_k}')}
      <p>One lane is the image, the other random noise: the image is the lane whose values sit on the 8-bit
      grid ${tex('k/255')} inside ${tex('[0, 1]')}. Below, the page encrypts a hidden letter under a
      <em>fresh random key it never shows</em>; the attack reads it back.</p>`,
    widget(box) {
      box.append(
        el('button', { type: 'button', id: 'w5-go', onclick: () => {
          const rec = wasm.attackRecoverImage(hidden.wire, hidden.h, hidden.w, 0, 1);
          drawGray($('w5-img'), rec.values(), hidden.w, hidden.h, 0, 1);
          const noise = rec.noise();
          drawGray($('w5-noise'), noise, hidden.w, hidden.h, Math.min(...noise), Math.max(...noise));
          $('w5-out').textContent = `lane chosen with confidence ${fmt(rec.confidence, 3)}`;
          rec.free();
        } }, 'Run the eigenbasis attack on the ciphertexts'),
        el('div', { class: 'figs' },
          el('figure', {}, el('canvas', { id: 'w5-img', class: 'pixels', width: 15, height: 21, role: 'img', 'aria-label': 'the recovered image lane' }),
            el('figcaption', {}, 'The data lane')),
          el('figure', {}, el('canvas', { id: 'w5-noise', class: 'pixels', width: 15, height: 21, role: 'img', 'aria-label': 'the noise lane' }),
            el('figcaption', {}, 'The other lane: noise'))),
        output('w5-out'),
      );
    },
    exercise: {
      kind: 'text',
      prompt: 'Which capital letter is hidden in the encrypted image? (Run the attack in the widget above.)',
      answer: 'K',
      hint: 'Press the button above and look at the data lane; it is a 5×7 letter drawn 3× larger.',
      solution: `<p>The attack takes the ciphertext with the most distinct eigenvalues, computes its two
        eigenvectors, and for every pixel divides ${tex('(C s)_k')} by ${tex('s_k')} on both lanes. The lane in
        ${tex('[0,1]')} on the 8-bit grid shows the letter <strong>K</strong>.</p>`,
    },
  },
  {
    id: 'known-value',
    title: 'A key from one known value',
    text: `<p>If an attacker knows one plaintext — a background pixel, say — one ciphertext ${tex('C_0')} of
      ${tex('m_0')} is enough. Any other ciphertext of the key is a combination of ${tex('C_0')} and the
      identity (Tsaban–Lifshitz):</p>
      ${texd('C = \\alpha\\,C_0 + \\beta I \\quad\\Rightarrow\\quad m = \\alpha\\,m_0 + \\beta')}
      <p>Solving for ${tex('\\alpha, \\beta')} needs no key; with the eigenvectors it even gives an equivalent
      key that decrypts everything.</p>`,
    widget(box) {
      box.append(
        el('p', {}, 'The page encrypts [0.2, 0.9, 0.5, 0.1] and tells the attacker only that the first value is 0.2.'),
        el('button', { type: 'button', id: 'w6-go', onclick: () => {
          const wire = encrypt([0.2, 0.9, 0.5, 0.1]);
          const stolen = wasm.attackKeyFromKnownPixel(wire, 0, 0.2);
          $('w6-out').textContent = `the stolen key decrypts: ${Array.from(stolen.decrypt(wire), (v) => fmt(v, 3)).join(', ')}`;
          stolen.free();
        } }, 'Recover a key from the one known value'),
        output('w6-out'),
      );
    },
    exercise: {
      kind: 'numbers',
      prompt: `${tex(`C_0 = ${C1}`)} is known to encrypt ${tex('m_0 = 3')}. Decrypt
        ${tex('C = \\begin{pmatrix}3&8\\\\-4&15\\end{pmatrix}')}, a ciphertext of the same key.`,
      fields: [['m', 7]],
      tol: 1e-6,
      hint: `Compare the off-diagonal entries of ${tex('C')} and ${tex('C_0')} to find ${tex('\\alpha')}.`,
      solution: `<p>${tex('8 = 4\\alpha')} gives ${tex('\\alpha = 2')}; then ${tex('3 = 2\\cdot 1 + \\beta')} gives
        ${tex('\\beta = 1')}. So ${tex('m = 2 \\cdot 3 + 1 = 7')}.</p>`,
    },
  },
  {
    id: 'equality',
    title: 'Equality tests',
    text: `<p>Subtracting two ciphertexts of one key gives ${tex('S\\,\\operatorname{diag}(m_i - m_j,\\ r_i - r_j)\\,S^{-1}')},
      so</p>
      ${texd('\\det(C_i - C_j) = (m_i - m_j)(r_i - r_j) = 0 \\iff m_i = m_j')}
      <p>(the random ${tex('r')} differ). The server sees which pixels are equal — every background pixel of an
      image, for instance — from determinants alone.</p>`,
    widget(box) {
      box.append(
        el('div', { class: 'row' }, numberInput('w7-a', 'm_i', '0.5'), numberInput('w7-b', 'm_j', '0.5'),
          el('button', { type: 'button', id: 'w7-go', onclick: () => {
            const z = wasm.attackEquality(encrypt([num('w7-a'), num('w7-b')]), 0, 1);
            $('w7-out').textContent = `det(C_i − C_j) = ${z.det.toExponential(2)} (scale ${fmt(z.scale, 3)}) → ${z.equal ? 'equal' : 'different'}`;
          } }, 'Test equality on the ciphertexts')),
        output('w7-out'),
      );
    },
    exercise: {
      kind: 'choice',
      prompt: `Three ciphertexts of one key: ${tex(`A = ${C1}`)}, ${tex('B = \\begin{pmatrix}7&-8\\\\4&-5\\end{pmatrix}')},
        ${tex(`D = ${C2}`)}. Which two encrypt the same number?`,
      options: ['A and B', 'A and D', 'B and D', 'none of them'],
      answer: 0,
      hint: `Compute ${tex('\\det(A - B)')} and ${tex('\\det(A - D)')}.`,
      solution: `<p>${tex('A - B = \\begin{pmatrix}-6&12\\\\-6&12\\end{pmatrix}')} has determinant 0: A and B both
        encrypt 3 (with ${tex('r = 5')} and ${tex('r = -1')}). ${tex('\\det(A - D) = 6 \\ne 0')}.</p>`,
    },
  },
  {
    id: 'lattice',
    title: 'What a lattice-based scheme changes',
    text: `<p>Lattice schemes (BFV, BGV, CKKS) hide a message in a noisy linear equation,
      ${tex('b = \\langle a, s\\rangle + e + \\Delta m \\pmod q')}: without the secret vector ${tex('s')},
      ${tex('b')} looks uniformly random (the Learning-With-Errors assumption). There is no matrix whose
      eigenvalues or determinant carry the message, no shared eigenbasis and no linear relation between
      ciphertexts. The price: ciphertexts are kilobytes instead of four numbers, the noise grows with each
      multiplication, and ReLU must be replaced by a polynomial approximation.</p>`,
    widget(box) {
      box.append(
        el('p', {}, 'A toy LWE encryption of one bit (n = 8, q = 97) beside the MORE attack on the same bit:'),
        el('button', { type: 'button', id: 'w8-go', onclick: () => {
          const q = 97;
          const n = 8;
          const rnd = (k) => Math.floor(Math.random() * k);
          const s = Array.from({ length: n }, () => rnd(q));
          const a = Array.from({ length: n }, () => rnd(q));
          const e = rnd(5) - 2;
          const bit = 1;
          const b = (a.reduce((acc, ai, i) => acc + ai * s[i], 0) + e + bit * Math.floor(q / 2)) % q;
          const more = wasm.attackEigenvalues(encrypt([bit]), 0);
          $('w8-out').textContent = `LWE ciphertext (a, b) = ([${a.join(', ')}], ${b}) — nothing to factor.\n`
            + `MORE ciphertext of the same bit: eigenvalues ${fmt(more.high)} and ${fmt(more.low)} — the bit is one of them.`;
        } }, 'Encrypt the bit 1 both ways'),
        output('w8-out'),
      );
    },
    exercise: {
      kind: 'choice',
      prompt: 'Which MORE attack still works against a lattice-based scheme such as BFV?',
      options: [
        'Reading the message from the trace and determinant.',
        'Testing equality with det(C_i − C_j).',
        'Recovering the key from one known plaintext.',
        'None of these: a ciphertext has no eigenvalues to read and known plaintexts do not reveal the secret vector.',
      ],
      answer: 3,
      hint: 'A BFV ciphertext is a pair of polynomials, not a matrix similar to diag(m, r).',
      solution: '<p>None. The attacks all rely on C being similar to diag(m, r) under one shared S. Under LWE, known plaintext–ciphertext pairs give noisy equations whose solution is believed to be hard.</p>',
    },
  },
  {
    id: 'challenge',
    title: 'The class challenge (needs the teacher’s server)',
    text: `<p>Your teacher created a challenge: the server rendered a secret phrase as an 8-bit image, encrypted it
      under a key it then dropped, and publishes only the ciphertext. Recover the phrase with the eigenbasis
      attack of step 5 and submit it. (Or write your own solver against the HTTP API — docs/api.md.)</p>`,
    widget(box) {
      box.append(
        el('div', { class: 'row' },
          el('label', { for: 'ch-id' }, 'Challenge id', el('input', { type: 'text', id: 'ch-id', autocomplete: 'off' })),
          el('button', { type: 'button', id: 'ch-load', onclick: () => loadChallenge().catch(challengeError) }, 'Download and attack')),
        el('figure', { class: 'figs' }, el('canvas', { id: 'ch-img', class: 'pixels', width: 62, height: 18, role: 'img', 'aria-label': 'the recovered challenge image' })),
        output('ch-out'),
        el('details', { id: 'teacher' }, el('summary', {}, 'For the teacher: create a challenge, see who solved it'),
          el('div', { class: 'row' },
            el('label', { for: 't-token' }, 'Teacher token', el('input', { type: 'password', id: 't-token', autocomplete: 'off' })),
            el('button', { type: 'button', id: 't-new', onclick: () => teacherNew().catch(teacherError) }, 'Create a challenge'),
            el('button', { type: 'button', id: 't-list', onclick: () => teacherList().catch(teacherError) }, 'Who solved it?')),
          output('t-out')),
      );
    },
    exercise: {
      kind: 'challenge',
      prompt: 'Type the phrase you read (5 characters) and your name, then submit it to the server.',
      hint: 'The phrase uses the characters ACDEFHJKLMNPRTUVWXY3479 only.',
      solution: '<p>Download the ciphertext, run the eigenbasis attack (the button above), read the five characters off the image and submit them. The server answers only correct or not.</p>',
    },
  },
];

// The hidden letter of step 5: a 5x7 "K" scaled 3x, encrypted under a fresh key the page forgets.
const K_GLYPH = ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'];
let hidden;
function makeHidden() {
  const sc = 3;
  const w = 5 * sc;
  const h = 7 * sc;
  const values = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) values[y * w + x] = K_GLYPH[Math.floor(y / sc)][Math.floor(x / sc)] === '#' ? 1 : 0;
  const fresh = wasm.Key.generate(undefined);
  const wire = fresh.encrypt(values, Uint32Array.from([h, w]));
  fresh.free();
  return { wire, w, h };
}

// ---- the challenge step --------------------------------------------------------------------------------

let challenge = null;
function challengeError(e) {
  $('ch-out').textContent = `Could not load the challenge: ${e.message || e}`;
}
async function loadChallenge() {
  const id = $('ch-id').value.trim();
  if (!/^[0-9a-f]{1,32}$/.test(id)) throw new Error('a challenge id is a short string of 0-9 and a-f');
  const info = await challengeInfo(id);
  const wire = await challengeCiphertext(info.ciphertext_url);
  const [h, w] = info.shape;
  const rec = wasm.attackRecoverImage(wire, h, w, info.value_range[0], info.value_range[1]);
  const values = rec.values();
  rec.free();
  drawGray($('ch-img'), values, w, h, 0, 1);
  challenge = { id, info, values };
  $('ch-out').textContent = `Recovered a ${h}×${w} image from the ciphertext alone. Read the phrase and submit it below.`;
}

// The teacher's panel: the token stays in this page (sent only as Authorization: Bearer to this server).
function teacherError(e) {
  $('t-out').textContent = `The server refused: ${e.message || e}`;
}
const teacherFetch = (path, method = 'GET') => teacherRequest(path, $('t-token').value.trim(), method);
async function teacherNew() {
  const { id } = await teacherFetch('challenges', 'POST');
  $('ch-id').value = id;
  const link = new URL(`web/learn.html#challenge=${id}`, document.baseURI).href;
  $('t-out').textContent = `Challenge ${id} created. Give the students the id, or the link ${link}`;
}
async function teacherList() {
  const id = $('ch-id').value.trim();
  if (!/^[0-9a-f]{1,32}$/.test(id)) throw new Error('enter or create a challenge id first');
  const list = await teacherFetch(`challenges/${id}/answers`);
  const rows = list.solved.map((x) => `${x.name} — ${x.at} (${x.seconds} s)`);
  $('t-out').textContent = `Phrase ${list.phrase}: ${list.solved.length} solved, ${list.answers.length} answers.${rows.length ? `\n${rows.join('\n')}` : ''}`;
}

async function submitChallenge(name, phrase) {
  if (!challenge) throw new Error('download and attack the challenge first');
  return (await submitAnswer(challenge.id, { name, phrase })).correct;
}

// ---- progress ------------------------------------------------------------------------------------------

function loadProgress() {
  try {
    const p = JSON.parse(localStorage.getItem(PROGRESS_KEY) || '{}');
    return p && typeof p === 'object' ? p : {};
  } catch {
    return {};
  }
}
let progress = loadProgress();
function markDone(id) {
  progress[id] = true;
  try {
    localStorage.setItem(PROGRESS_KEY, JSON.stringify(progress));
  } catch { /* storage full or disabled: progress lasts for this visit */ }
  showProgress();
}
function showProgress() {
  const done = STEPS.filter((s) => progress[s.id]).length;
  $('progress-text').textContent = `${done} of ${STEPS.length} steps done`;
  for (const s of STEPS) {
    const link = document.querySelector(`#toc a[href$="#step-${s.id}"]`);
    if (link) {
      link.classList.toggle('done', !!progress[s.id]);
      link.setAttribute('aria-label', `${link.textContent.replace(/ ✓$/, '')}${progress[s.id] ? ' (done)' : ''}`);
    }
    const mark = document.getElementById(`done-${s.id}`);
    if (mark) mark.textContent = progress[s.id] ? '✓ done' : '';
  }
}

// ---- building the page ---------------------------------------------------------------------------------

function buildExercise(step, n) {
  const ex = step.exercise;
  const box = el('div', { class: 'exercise' }, el('h3', {}, 'Exercise'), el('p', { html: ex.prompt }));
  const fb = el('p', { class: 'feedback', id: `fb-${step.id}`, role: 'status', 'aria-live': 'polite' });
  let check;
  if (ex.kind === 'numbers') {
    const row = el('div', { class: 'row' });
    ex.fields.forEach(([label], i) => row.append(numberInput(`ex-${step.id}-${i}`, label)));
    box.append(row);
    check = () => {
      const vals = ex.fields.map((_, i) => parseFloat($(`ex-${step.id}-${i}`).value));
      if (vals.some((v) => !Number.isFinite(v))) return [false, 'Enter a number in every box.'];
      const ok = vals.every((v, i) => Math.abs(v - ex.fields[i][1]) <= ex.tol);
      return [ok, ok ? 'Correct — well done.' : 'Not yet: at least one value is off. Try the hint.'];
    };
  } else if (ex.kind === 'choice') {
    const fs = el('fieldset', {}, el('legend', {}, 'Choose one answer'));
    ex.options.forEach((o, i) => {
      const id = `ex-${step.id}-${i}`;
      fs.append(el('label', { for: id }, el('input', { type: 'radio', name: `ex-${step.id}`, id, value: String(i) }), ` ${o}`));
    });
    box.append(fs);
    check = () => {
      const picked = document.querySelector(`input[name="ex-${step.id}"]:checked`);
      if (!picked) return [false, 'Pick one answer.'];
      const ok = Number(picked.value) === ex.answer;
      return [ok, ok ? 'Correct — well done.' : 'Not that one. Try the hint.'];
    };
  } else if (ex.kind === 'text') {
    box.append(el('div', { class: 'row' }, el('label', { for: `ex-${step.id}-0` }, 'Your answer',
      el('input', { type: 'text', id: `ex-${step.id}-0`, autocomplete: 'off', maxlength: '8' }))));
    check = () => {
      const ok = $(`ex-${step.id}-0`).value.trim().toUpperCase() === ex.answer;
      return [ok, ok ? 'Correct — you read the image without the key.' : 'Not yet. Did you run the attack?'];
    };
  } else {
    box.append(el('div', { class: 'row' },
      el('label', { for: 'ch-phrase' }, 'Phrase', el('input', { type: 'text', id: 'ch-phrase', autocomplete: 'off', maxlength: '16' })),
      el('label', { for: 'ch-name' }, 'Your name', el('input', { type: 'text', id: 'ch-name', autocomplete: 'name', maxlength: '40' }))));
    check = async () => {
      const ok = await submitChallenge($('ch-name').value, $('ch-phrase').value);
      return [ok, ok ? 'Correct — the server recorded your solution.' : 'The server says: not correct. Look again at the image.'];
    };
  }
  const btn = el('button', { type: 'button', class: 'primary', id: `check-${step.id}` }, 'Check my answer');
  btn.addEventListener('click', async () => {
    try {
      const [ok, text] = await check();
      fb.textContent = text;
      fb.className = `feedback ${ok ? 'good' : 'bad'}`;
      if (ok) markDone(step.id);
    } catch (e) {
      fb.textContent = `Could not check: ${e.message || e}`;
      fb.className = 'feedback bad';
    }
  });
  box.append(el('div', { class: 'row' }, btn), fb,
    el('details', { id: `hint-${step.id}` }, el('summary', {}, 'Show a hint'), el('div', { html: `<p>${ex.hint}</p>` })),
    el('details', { id: `solution-${step.id}` }, el('summary', {}, 'Show the worked solution'), el('div', { html: ex.solution })));
  void n;
  return box;
}

function build() {
  const toc = $('toc');
  const main = $('steps');
  STEPS.forEach((step, i) => {
    toc.append(el('li', {}, el('a', { href: `web/learn.html#step-${step.id}` }, `${i + 1}. ${step.title.replace(/ \(.*\)$/, '').replace(/:.*/, '')}`)));
    const h2 = el('h2', { id: `h-${step.id}` }, `${i + 1}. ${step.title}`, el('span', { class: 'done-mark', id: `done-${step.id}` }));
    const widget = el('div', { class: 'widget' }, el('h3', {}, 'Try it'));
    step.widget(widget);
    const section = el('section', { class: 'lesson-step', id: `step-${step.id}`, 'aria-labelledby': `h-${step.id}` },
      h2, el('div', { html: step.text }), widget, buildExercise(step, i));
    main.append(section);
  });
  typeset(document.body);
  showProgress();
  $('reset-progress').addEventListener('click', () => {
    progress = {};
    try { localStorage.removeItem(PROGRESS_KEY); } catch { /* nothing stored */ }
    showProgress();
  });
  const m = /challenge=([0-9a-f]+)/.exec(location.hash);
  if (m) $('ch-id').value = m[1];
}

const ready = (async () => {
  await init();
  await new Promise((r) => (window.katex ? r() : window.addEventListener('load', r, { once: true })));
  key = wasm.Key.fromSeed(20260101n);
  hidden = makeHidden();
  build();
  $('status').textContent = `Ready: the WebAssembly module (more-wasm ${wasm.version()}) runs every widget in this page.`;
})().catch((e) => {
  $('status').textContent = `The lesson could not start: ${e.message || e}`;
  $('status').classList.add('bad');
  throw e;
});

window.lesson = { ready, progress: () => ({ ...progress }), steps: STEPS.map((s) => s.id) };
