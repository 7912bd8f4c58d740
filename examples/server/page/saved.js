// Unfinished uploads kept across reloads: the session of each file, in
// localStorage under the file's fingerprint (name, size, last modification).

const STORAGE_KEY = 'resumable.uploads.v1';

/** The key of a file: the same file picked again has the same one. */
export function fingerprint(file) {
  return JSON.stringify([file.name, file.size, file.lastModified]);
}

/** Unfinished sessions by file fingerprint, in localStorage. */
export const saved = {
  all() {
    try {
      const map = JSON.parse(localStorage.getItem(STORAGE_KEY) || '{}');
      return map && typeof map === 'object' ? map : {};
    } catch {
      return {};
    }
  },
  get(fp) {
    return this.all()[fp] || null;
  },
  put(fp, entry) {
    const map = this.all();
    map[fp] = { ...map[fp], ...entry, savedAt: new Date().toISOString() };
    this.write(map);
  },
  remove(fp) {
    const map = this.all();
    delete map[fp];
    this.write(map);
  },
  write(map) {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(map));
    } catch {
      // Storage full or refused: uploads still work, only resuming after a
      // reload does not.
    }
  },
};
