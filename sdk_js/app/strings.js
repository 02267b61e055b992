// The string table of one batch: event fields that name a string hold an index into it.
// Index 0 is the page or screen the batch opened on (a zero index costs nothing on the wire),
// or, in a resumable batch built on the strings the server keeps, the first kept one; an
// optional string with no value points at an explicit "" entry, never at 0 by default.

export class StringTable {
  /** @param {string} [first] the page or screen path, index 0 */
  constructor(first = "") {
    /** @type {string[]} */
    this.strings = [first];
    /** @type {Map<string, number>} */
    this._index = new Map([[first, 0]]);
  }

  /** Interns `value` and returns its position. @param {string} value @returns {number} */
  index(value) {
    let found = this._index.get(value);
    if (found === undefined) {
      found = this.strings.length;
      this.strings.push(value);
      this._index.set(value, found);
    }
    return found;
  }

  /**
   * A table that starts with `kept`, the strings the server keeps for the stream (`first` at 0
   * when there are none).
   * @param {string[]} kept @param {string} first @returns {StringTable}
   */
  static carrying(kept, first) {
    if (kept.length === 0) return new StringTable(first);
    const table = new StringTable(kept[0]);
    for (const value of kept.slice(1)) table.index(value);
    return table;
  }

  get length() {
    return this.strings.length;
  }

  /** Forgets the strings added after the first `length` (an event that did not fit). */
  truncate(/** @type {number} */ length) {
    for (const value of this.strings.slice(length)) this._index.delete(value);
    this.strings.length = length;
  }
}

/** Bytes of `text` in UTF-8, without encoding it. @param {string} text @returns {number} */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length
             && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair: one code point above U+FFFF
      i++;
    } else bytes += 3;
  }
  return bytes;
}
