// A review task's values as a reader expects them: addresses in lines as on a letter,
// money in its currency, dates and identifiers in fixed-width type, and the parts in
// which two values differ marked. Pure functions over the API's JSON (no DOM, no
// fetch); steward.js puts their HTML on the page.
"use strict";

// The one global: the functions steward.js uses.
const Review = (() => {
  // What the API sends instead of a sensitive value to a key without the grant
  // (mdm/api/sensitive.py). Shown as it is: the page never learns the value.
  const MASKED = "***";
  const LOCALE = navigator.language || "en";
  const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
  // Attributes that are codes and numbers rather than words: set in fixed-width type so
  // that two of them line up character by character.
  const IDENTIFIER = /(^|_)(id|ref|number|code|duns|iban|bic)$|^(phone|email|website)$/;
  // Where the postal code goes on a letter: before the town (most of continental
  // Europe), on a line of its own (the British Isles), else after the town and region.
  const POSTCODE_FIRST = new Set(["AT", "BE", "CH", "CZ", "DE", "DK", "EE", "ES", "FI", "FR",
    "GR", "HR", "HU", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "NL", "NO", "PL", "PT", "RO",
    "SE", "SI", "SK"]);
  const POSTCODE_OWN_LINE = new Set(["GB", "IE"]);
  const ADDRESS_KEYS = new Set(["line1", "line2", "city", "region", "postal_code", "country"]);

  function escText(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    })[c]);
  }

  function isPlainObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function isAddress(value) {
    return isPlainObject(value) && Object.keys(value).length > 0
      && Object.keys(value).every((k) => ADDRESS_KEYS.has(k));
  }

  function isMoney(value) {
    return isPlainObject(value) && "amount" in value && "currency" in value
      && Object.keys(value).length === 2;
  }

  function countryName(code) {
    if (typeof code !== "string" || !/^[A-Za-z]{2}$/.test(code)) return code;
    try {
      return new Intl.DisplayNames([LOCALE], { type: "region" }).of(code.toUpperCase()) || code;
    } catch {
      return code;
    }
  }

  function formatMoney(money) {
    const amount = String(money.amount);
    try {
      // A string keeps the decimal exact (Intl formats it without a float on the way).
      return new Intl.NumberFormat(LOCALE, { style: "currency", currency: String(money.currency) })
        .format(amount);
    } catch {
      return `${amount} ${money.currency}`;
    }
  }

  // A value as lines of keyed parts: [{ key, text }][]. Parts with the same key on the two
  // sides are compared with each other (the town with the town, the amount with the amount).
  function valueLines(name, value) {
    if (isAddress(value)) return addressLines(value);
    if (isMoney(value)) return [[{ key: "money", text: formatMoney(value) }]];
    if (Array.isArray(value)) return value.map((item, i) => [{ key: String(i), text: plainText(item) }]);
    if (isPlainObject(value)) {
      return flatten(value, "").map(([key, item]) => [{ key, label: `${key}: `, text: item }]);
    }
    return [[{ key: "value", text: plainText(value) }]];
  }

  function plainText(value) {
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number") return new Intl.NumberFormat(LOCALE).format(value);
    if (isMoney(value)) return formatMoney(value);
    if (Array.isArray(value)) return value.map(plainText).join(", ");
    if (value !== null && typeof value === "object") {
      return flatten(value, "").map(([k, v]) => `${k}: ${v}`).join(", ");
    }
    return String(value ?? "");
  }

  // An unknown nested object as dotted keys and their plain values (never JSON).
  function flatten(value, prefix) {
    return Object.keys(value).sort().flatMap((k) => {
      const item = value[k];
      const key = prefix ? `${prefix}.${k}` : k;
      return isPlainObject(item) && !isMoney(item) ? flatten(item, key) : [[key, plainText(item)]];
    });
  }

  function addressLines(a) {
    const country = typeof a.country === "string" ? a.country.toUpperCase() : "";
    const part = (key, text) => (text ? [{ key, text: String(text) }] : []);
    const lines = [part("line1", a.line1), part("line2", a.line2)];
    if (POSTCODE_FIRST.has(country)) {
      lines.push([...part("postal_code", a.postal_code), ...part("city", a.city)], part("region", a.region));
    } else if (POSTCODE_OWN_LINE.has(country)) {
      lines.push(part("city", a.city), part("region", a.region), part("postal_code", a.postal_code));
    } else {
      lines.push([...part("city", a.city), ...part("region", a.region), ...part("postal_code", a.postal_code)]);
    }
    lines.push(part("country", countryName(a.country)));
    return lines.filter((line) => line.length);
  }

  // -- marking what differs ---------------------------------------------------------

  // Pairs of indices of a longest common subsequence of two short arrays.
  function commonPairs(a, b) {
    const n = a.length;
    const m = b.length;
    const table = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
      }
    }
    const pairs = [];
    for (let i = 0, j = 0; i < n && j < m;) {
      if (a[i] === b[j]) pairs.push([i++, j++]);
      else if (table[i + 1][j] >= table[i][j + 1]) i++;
      else j++;
    }
    return pairs;
  }

  function tokens(text) {
    return text.match(/[\p{L}\p{N}]+|\s+|[^\p{L}\p{N}\s]/gu) || [];
  }

  // Two words or numbers close enough that marking single characters helps (a typo, two
  // digits swapped); otherwise the whole word is marked.
  function nearlyTheSame(a, b) {
    const longest = Math.max(a.length, b.length);
    return longest >= 4 && commonPairs([...a], [...b]).length >= 0.6 * longest;
  }

  // Each side's text as segments [{ text, changed }]: words compared first, then the
  // characters of a word that replaced a similar one.
  function diffTexts(a, b) {
    const ta = tokens(a);
    const tb = tokens(b);
    const left = [];
    const right = [];
    let i = 0;
    let j = 0;
    const gap = (untilA, untilB) => {
      const runA = ta.slice(i, untilA);
      const runB = tb.slice(j, untilB);
      if (runA.length === 1 && runB.length === 1 && nearlyTheSame(runA[0], runB[0])) {
        const [ca, cb] = [[...runA[0]], [...runB[0]]];
        const pairs = commonPairs(ca, cb);
        const keptA = new Set(pairs.map(([x]) => x));
        const keptB = new Set(pairs.map(([, y]) => y));
        ca.forEach((c, k) => left.push({ text: c, changed: !keptA.has(k) }));
        cb.forEach((c, k) => right.push({ text: c, changed: !keptB.has(k) }));
      } else {
        runA.forEach((t) => left.push({ text: t, changed: true }));
        runB.forEach((t) => right.push({ text: t, changed: true }));
      }
      i = untilA;
      j = untilB;
    };
    for (const [x, y] of commonPairs(ta, tb)) {
      gap(x, y);
      left.push({ text: ta[x], changed: false });
      right.push({ text: tb[y], changed: false });
      i = x + 1;
      j = y + 1;
    }
    gap(ta.length, tb.length);
    return [joinSegments(left), joinSegments(right)];
  }

  function joinSegments(segments) {
    const out = [];
    for (const s of segments) {
      const last = out[out.length - 1];
      if (last && last.changed === s.changed) last.text += s.text;
      else out.push({ ...s });
    }
    return out;
  }

  // Marks hold what differs, not the spaces around it.
  function segmentsHtml(segments) {
    return segments.map((s) => {
      const [, before, text, after] = s.text.match(/^(\s*)(.*?)(\s*)$/su);
      return s.changed && text
        ? `${escText(before)}<mark>${escText(text)}</mark>${escText(after)}` : escText(s.text);
    }).join("");
  }

  // -- one attribute, both sides ------------------------------------------------------

  function canonical(value) {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (isPlainObject(value)) {
      return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
    }
    return JSON.stringify(value);
  }

  function kindOf(name, value) {
    if (value === MASKED) return "masked";
    if (isAddress(value)) return "address";
    if (isMoney(value)) return "money";
    if (typeof value === "string" && ISO_DATE.test(value)) return "date";
    if (IDENTIFIER.test(name)) return "identifier";
    return "text";
  }

  // The HTML of one side's value; `other` is the other side's lines when the parts that
  // differ are to be marked (null: show the value as it is).
  function valueHtml(name, value, lines, other) {
    const kind = kindOf(name, value);
    if (kind === "masked") {
      return `<span class="value masked" title="sensitive: your key has no grant to read it">${MASKED}</span>`;
    }
    const byKey = new Map((other || []).flat().map((p) => [p.key, p.text]));
    const html = lines.map((line) => `<span class="line">${line.map((p) => {
      let text = escText(p.text);
      if (other && !byKey.has(p.key)) text = `<mark>${text}</mark>`;
      else if (other && byKey.get(p.key) !== p.text) text = segmentsHtml(diffTexts(p.text, byKey.get(p.key))[0]);
      return `<span class="part" data-part="${escText(p.key)}">${p.label ? `<span class="muted">${escText(p.label)}</span>` : ""}${text}</span>`;
    }).join(" ")}</span>`).join("");
    return `<span class="value ${kind}">${html}</span>`;
  }

  // One row of the comparison: how the two values relate, and each side's HTML.
  // `differs` is the API's verdict (task detail `different`), which knows what is masked.
  function compareAttribute(name, mine, theirs, differs) {
    const present = (v) => v !== null && v !== undefined;
    const absent = '<span class="value absent">—</span>';
    if (mine === MASKED || theirs === MASKED) {
      return { state: "masked", left: present(mine) ? valueHtml(name, mine) : absent,
        right: present(theirs) ? valueHtml(name, theirs) : absent };
    }
    if (!present(mine) || !present(theirs)) {
      return { state: "one-sided",
        left: present(mine) ? valueHtml(name, mine, valueLines(name, mine)) : absent,
        right: present(theirs) ? valueHtml(name, theirs, valueLines(name, theirs)) : absent };
    }
    const a = valueLines(name, mine);
    const b = valueLines(name, theirs);
    if (!differs && canonical(mine) === canonical(theirs)) {
      return { state: "agree", left: valueHtml(name, mine, a), right: valueHtml(name, theirs, b) };
    }
    return { state: "differ", left: valueHtml(name, mine, a, b), right: valueHtml(name, theirs, b, a) };
  }

  // A value on its own (the waterfall, a golden record), read the same way, nothing marked.
  function readableValue(name, value) {
    if (value === null || value === undefined) return "";
    return valueHtml(name, value, valueLines(name, value));
  }

  return { MASKED, compareAttribute, readableValue };
})();
