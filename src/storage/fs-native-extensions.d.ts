// Types for the one function of fs-native-extensions used here (the package ships none).

declare module 'fs-native-extensions' {
  /**
   * Takes an open-file-description lock (exclusive unless `shared`) on `fd` without waiting:
   * true when taken, false when another holder has it; throws other errors.
   */
  export function tryLock(
    fd: number,
    offset?: number,
    length?: number,
    opts?: { shared?: boolean },
  ): boolean;
}
