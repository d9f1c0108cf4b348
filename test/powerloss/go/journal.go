package main

// The durability model: what a disk would still hold if the power went out now.
//
// Every operation is applied to the backing directory at once (so reads need no overlay), and
// the journal keeps what is needed to take back whatever is not durable yet:
//   - file data: the durable bytes of every page written since the file's last sync, and the
//     durable size. fsync/fdatasync of the file makes all of it durable (FUSE does not say which
//     range, so a sync covers the whole file); a write through a descriptor opened with
//     O_DSYNC/O_SYNC makes its own pages and the size durable.
//   - names: every create, mkdir, unlink, rmdir, rename, link and symlink, until fsync of each
//     directory it changed. Unlinked or replaced files are moved to the trash so they can come
//     back. POSIX and Linux's fsync(2) say an fsync of a file does not make its directory entry
//     durable: only an fsync of the directory does, and that is the rule here.
//
// cut() is the power cut: it takes back the unsynced operations (all, or a seeded random
// subset, since a disk may have written some of them in any order) and leaves the backing
// directory as the disk would be after a restart.

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
)

// pageSize is the unit a disk writes atomically in this model.
const pageSize = 4096

type fileState struct {
	durableSize int64
	// Durable bytes of each page changed since the last sync, by page index; shorter than a
	// page where the durable file ended inside it (empty beyond the durable size).
	saved map[int64][]byte
}

type opKind string

const (
	opCreate  opKind = "create"
	opMkdir   opKind = "mkdir"
	opUnlink  opKind = "unlink"
	opRmdir   opKind = "rmdir"
	opRename  opKind = "rename"
	opLink    opKind = "link"
	opSymlink opKind = "symlink"
)

// nsOp is a change of names not yet durable.
type nsOp struct {
	kind opKind
	// Paths relative to the exposed root: the name made or removed (from = to for all but rename).
	from, to string
	// Where the file that an unlink removed, or a rename replaced, is kept (absolute), if any.
	trash string
	// The replaced entry was a directory (renamed over an empty directory).
	trashDir bool
	// Directory inodes whose fsync is still needed.
	pending map[uint64]bool
}

// Journal is the state of one mounted filesystem. Its methods are safe for concurrent use.
type Journal struct {
	root, trash string
	mu          sync.Mutex
	files       map[uint64]*fileState
	ops         []*nsOp
	trashSeq    int
	dead        bool
	// Counters for `stats`.
	fileSyncs, dsyncWrites, dirSyncs, writes int64
	// Read requests of file data (those the kernel's page cache did not answer).
	reads atomic.Int64
}

func NewJournal(root, trash string) *Journal {
	return &Journal{root: root, trash: trash, files: map[uint64]*fileState{}}
}

func inoOfFd(fd int) (uint64, int64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return 0, 0, err
	}
	return st.Ino, st.Size, nil
}

// state returns the journal entry of a file, making it when the file has none (then all of it,
// at size `size`, is durable).
func (j *Journal) state(ino uint64, size int64) *fileState {
	fs := j.files[ino]
	if fs == nil {
		fs = &fileState{durableSize: size, saved: map[int64][]byte{}}
		j.files[ino] = fs
	}
	return fs
}

// preserve saves the durable bytes of every page in [off, off+n) not saved yet. The file's
// content there is still durable (every change since the last sync went through here).
func (j *Journal) preserve(fd int, fs *fileState, off, n int64) error {
	if n <= 0 {
		return nil
	}
	for p := off / pageSize; p <= (off+n-1)/pageSize; p++ {
		if _, ok := fs.saved[p]; ok {
			continue
		}
		keep := min(int64(pageSize), fs.durableSize-p*pageSize)
		buf := make([]byte, max(keep, 0))
		if keep > 0 {
			got, err := syscall.Pread(fd, buf, p*pageSize)
			if err != nil {
				return err
			}
			// Zeros where the file is now shorter than it durably was: an unsynced shrink
			// saved those pages already, so this only happens on a sparse tail.
			buf = buf[:max(got, 0)]
			buf = append(buf, make([]byte, int(keep)-len(buf))...)
		}
		fs.saved[p] = buf
	}
	return nil
}

// Write writes data at off through fd; sync: the descriptor was opened with O_DSYNC/O_SYNC.
func (j *Journal) Write(fd int, data []byte, off int64, sync bool) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fs, err := j.fileAt(fd)
	if err != nil {
		return 0, err
	}
	if err := j.preserve(fd, fs, off, int64(len(data))); err != nil {
		return 0, err
	}
	n, err := syscall.Pwrite(fd, data, off)
	j.writes++
	if err != nil || !sync {
		return n, err
	}
	// Durable once the call returns (SyncRanges, at the fsync the kernel sends after it).
	j.dsyncWrites++
	return n, nil
}

// fileAt is the journal's state of the file open at fd (j.mu held); EIO after a cut.
func (j *Journal) fileAt(fd int) (*fileState, error) {
	if j.dead {
		return nil, syscall.EIO
	}
	ino, size, err := inoOfFd(fd)
	if err != nil {
		return nil, err
	}
	return j.state(ino, size), nil
}

// SyncRanges makes the pages of the given [offset, length] ranges of the file open at fd, and its
// size, durable: synchronized I/O data integrity, at the end of write calls on an O_DSYNC
// descriptor (file.Fsync).
func (j *Journal) SyncRanges(fd int, ranges [][2]int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	fs, err := j.fileAt(fd)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		for p := r[0] / pageSize; p <= (r[0]+r[1]-1)/pageSize; p++ {
			delete(fs.saved, p)
		}
	}
	_, size, err := inoOfFd(fd)
	if err != nil {
		return err
	}
	fs.durableSize = size
	return nil
}

// Resize changes the size of the file open at fd (ftruncate, or fallocate when punch is false
// and it only grows) after saving what it destroys.
func (j *Journal) Resize(fd int, apply func() error, from, to int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	fs, err := j.fileAt(fd)
	if err != nil {
		return err
	}
	if err := j.preserve(fd, fs, from, to-from); err != nil {
		return err
	}
	return apply()
}

// SyncFile makes everything written to the file open at fd durable (fsync or fdatasync).
func (j *Journal) SyncFile(fd int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dead {
		return syscall.EIO
	}
	ino, size, err := inoOfFd(fd)
	if err != nil {
		return err
	}
	j.fileSyncs++
	fs := j.state(ino, size)
	fs.saved = map[int64][]byte{}
	fs.durableSize = size
	return nil
}

// SyncDir makes the name changes in directory `ino` durable; an operation is durable once every
// directory it changed was synced after it.
func (j *Journal) SyncDir(ino uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dead {
		return syscall.EIO
	}
	j.dirSyncs++
	kept := j.ops[:0]
	for _, op := range j.ops {
		delete(op.pending, ino)
		if len(op.pending) > 0 {
			kept = append(kept, op)
			continue
		}
		j.forgetTrash(op)
	}
	clear(j.ops[len(kept):])
	j.ops = kept
	return nil
}

// forgetTrash deletes what a durable unlink or replacing rename removed.
func (j *Journal) forgetTrash(op *nsOp) {
	if op.trash == "" {
		return
	}
	var st syscall.Stat_t
	if syscall.Lstat(op.trash, &st) == nil && st.Nlink <= 1 && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		delete(j.files, st.Ino)
	}
	_ = os.RemoveAll(op.trash)
}

// Names runs `apply` (a change of names) under the journal's lock and records `op` when it
// succeeds. trashFor, when set, is moved to the trash first (the entry an unlink removes or a
// rename replaces); apply then must not touch it.
func (j *Journal) Names(op *nsOp, trashFor string, apply func() error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dead {
		return syscall.EIO
	}
	if trashFor != "" {
		var st syscall.Stat_t
		if err := syscall.Lstat(trashFor, &st); err == nil {
			j.trashSeq++
			t := filepath.Join(j.trash, fmt.Sprintf("%08d", j.trashSeq))
			if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				err = os.Rename(trashFor, t)
				op.trashDir = true
			} else {
				// A second name, so a rename over it stays atomic.
				err = os.Link(trashFor, t)
			}
			if err != nil {
				return err
			}
			op.trash = t
		} else if op.kind == opUnlink {
			return err
		}
	}
	if err := apply(); err != nil {
		if op.trash != "" {
			if op.trashDir {
				_ = os.Rename(op.trash, trashFor)
			} else {
				_ = os.Remove(op.trash)
			}
		}
		return err
	}
	j.ops = append(j.ops, op)
	return nil
}

// Dead reports whether the power was cut.
func (j *Journal) Dead() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.dead
}

// CutReport says what a power cut took back.
type CutReport struct {
	Seed          int64    `json:"seed"`
	Keep          float64  `json:"keep"`
	OpsUndone     int      `json:"opsUndone"`
	OpsKept       int      `json:"opsKept"`
	PagesReverted int      `json:"pagesReverted"`
	PagesKept     int      `json:"pagesKept"`
	FilesResized  int      `json:"filesResized"`
	Errors        []string `json:"errors"`
}

// Stats are the journal's counters.
type Stats struct {
	Writes        int64 `json:"writes"`
	Reads         int64 `json:"reads"`
	DsyncWrites   int64 `json:"dsyncWrites"`
	FileSyncs     int64 `json:"fileSyncs"`
	DirSyncs      int64 `json:"dirSyncs"`
	UnsyncedPages int   `json:"unsyncedPages"`
	UnsyncedOps   int   `json:"unsyncedOps"`
	Dead          bool  `json:"dead"`
	// Held: operations waiting for `resume` now (main.go's held).
	Held int64 `json:"held"`
}

func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := Stats{Writes: j.writes, Reads: j.reads.Load(), DsyncWrites: j.dsyncWrites, FileSyncs: j.fileSyncs,
		DirSyncs: j.dirSyncs, UnsyncedOps: len(j.ops), Dead: j.dead}
	for _, fs := range j.files {
		s.UnsyncedPages += len(fs.saved)
	}
	return s
}

// SyncAll makes everything durable (like sync(2) followed by a clean shutdown).
func (j *Journal) SyncAll() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, op := range j.ops {
		j.forgetTrash(op)
	}
	j.ops = nil
	j.files = map[uint64]*fileState{}
}

// Cut simulates a power cut: from now on every operation fails with EIO, and the backing
// directory is left as the disk would be. keep is the probability that an unsynced page write
// reached the disk anyway (0: none did); a random prefix of the unsynced name changes survives
// when keep > 0 (a journaling filesystem commits them in order).
func (j *Journal) Cut(seed int64, keep float64) CutReport {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.dead = true
	rng := rand.New(rand.NewSource(seed))
	r := CutReport{Seed: seed, Keep: keep, Errors: []string{}}
	fail := func(format string, args ...any) { r.Errors = append(r.Errors, fmt.Sprintf(format, args...)) }

	survive := 0
	if keep > 0 {
		survive = rng.Intn(len(j.ops) + 1)
	}
	for i := len(j.ops) - 1; i >= survive; i-- {
		if err := j.undo(j.ops[i]); err != nil {
			fail("undo %s %s -> %s: %v", j.ops[i].kind, j.ops[i].from, j.ops[i].to, err)
		}
		j.ops[i].trash = "" // moved back, or nothing to keep
		r.OpsUndone++
	}
	r.OpsKept = survive
	for _, op := range j.ops[:survive] {
		j.forgetTrash(op)
	}
	j.ops = nil

	paths := j.pathsByIno()
	inos := make([]uint64, 0, len(j.files))
	for ino := range j.files {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(a, b int) bool { return inos[a] < inos[b] })
	for _, ino := range inos {
		fs := j.files[ino]
		p, ok := paths[ino]
		if !ok || (len(fs.saved) == 0 && !j.sizeChanged(p, fs)) {
			continue
		}
		if err := j.revertFile(p, fs, rng, keep, &r); err != nil {
			fail("revert %s: %v", p, err)
		}
	}
	j.files = map[uint64]*fileState{}
	// Whatever is left in the trash was removed durably.
	entries, _ := os.ReadDir(j.trash)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(j.trash, e.Name()))
	}
	return r
}

func (j *Journal) sizeChanged(path string, fs *fileState) bool {
	st, err := os.Stat(path)
	return err != nil || st.Size() != fs.durableSize
}

// revertFile puts back the durable bytes of the pages that did not reach the disk and the size.
func (j *Journal) revertFile(path string, fs *fileState, rng *rand.Rand, keep float64, r *CutReport) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pages := make([]int64, 0, len(fs.saved))
	for p := range fs.saved {
		pages = append(pages, p)
	}
	sort.Slice(pages, func(a, b int) bool { return pages[a] < pages[b] })
	size := fs.durableSize
	var reverted []int64
	for _, p := range pages {
		if keep > 0 && rng.Float64() < keep {
			r.PagesKept++
			// A page past the durable end that made it lengthens the file (up to its size now).
			size = max(size, min(st.Size(), (p+1)*pageSize))
			continue
		}
		reverted = append(reverted, p)
	}
	if size != st.Size() {
		r.FilesResized++
		if err := f.Truncate(size); err != nil {
			return err
		}
	}
	for _, p := range reverted {
		r.PagesReverted++
		at := p * pageSize
		if at >= size {
			continue
		}
		buf := make([]byte, min(int64(pageSize), size-at))
		copy(buf, fs.saved[p])
		if _, err := f.WriteAt(buf, at); err != nil {
			return err
		}
	}
	return nil
}

// pathsByIno maps the inode of every regular file under the root to one of its paths.
func (j *Journal) pathsByIno() map[uint64]string {
	out := map[uint64]string{}
	_ = filepath.WalkDir(j.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil {
			out[st.Ino] = p
		}
		return nil
	})
	return out
}

// undo takes back one name change; later ones were taken back already.
func (j *Journal) undo(op *nsOp) error {
	from := filepath.Join(j.root, op.from)
	to := filepath.Join(j.root, op.to)
	switch op.kind {
	case opCreate, opLink, opSymlink:
		return os.Remove(to)
	case opMkdir:
		return os.RemoveAll(to)
	case opRmdir:
		return os.Mkdir(to, 0o755)
	case opUnlink:
		return os.Rename(op.trash, to)
	case opRename:
		if err := os.Rename(to, from); err != nil {
			return err
		}
		if op.trash != "" {
			return os.Rename(op.trash, to)
		}
		return nil
	}
	return fmt.Errorf("unknown operation %q", op.kind)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf(`{"error":%q}`, err.Error())
	}
	return string(b)
}
