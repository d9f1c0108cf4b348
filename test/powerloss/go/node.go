package main

// The FUSE side: a loopback filesystem (go-fuse's LoopbackNode for lookups, attributes and
// directory listings) whose every change goes through the Journal.

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

type node struct {
	fs.LoopbackNode
	j *Journal
}

func newRoot(j *Journal, path string) (fs.InodeEmbedder, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil, err
	}
	r := &fs.LoopbackRoot{Path: path, Dev: uint64(st.Dev)}
	r.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, j: j}
	}
	root := &node{LoopbackNode: fs.LoopbackNode{RootData: r}, j: j}
	r.RootNode = root
	return root, nil
}

// rel is the node's path relative to the root; abs the backing path.
func (n *node) rel() string              { return n.Path(n.Root()) }
func (n *node) abs() string              { return filepath.Join(n.RootData.Path, n.rel()) }
func (n *node) child(name string) string { return filepath.Join(n.rel(), name) }
func (n *node) dirIno() uint64           { return n.StableAttr().Ino }

func (n *node) dead() bool { return n.j.Dead() }

const syncFlags = syscall.O_DSYNC | syscall.O_SYNC

var (
	_ = (fs.NodeLookuper)((*node)(nil))
	_ = (fs.NodeCreater)((*node)(nil))
	_ = (fs.NodeOpener)((*node)(nil))
	_ = (fs.NodeOpendirHandler)((*node)(nil))
	_ = (fs.NodeSetattrer)((*node)(nil))
	_ = (fs.NodeFsyncer)((*node)(nil))
)

// Lookup reaches the disk for a name the kernel does not hold: with `hang lookups`, it waits.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	hungLookup()
	return n.LoopbackNode.Lookup(ctx, name, out)
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if n.dead() {
		return nil, nil, 0, syscall.EIO
	}
	p := filepath.Join(n.abs(), name)
	var ch *fs.Inode
	var fh fs.FileHandle
	var fuseFlags uint32
	flags = readable(flags)
	create := func() error {
		var errno syscall.Errno
		ch, fh, fuseFlags, errno = n.LoopbackNode.Create(ctx, name, flags, mode, out)
		return errnoOrNil(errno)
	}
	var err error
	if _, statErr := osLstat(p); statErr == nil {
		// It exists (the kernel did not know): an open, which may truncate.
		if flags&syscall.O_EXCL != 0 {
			return nil, nil, 0, syscall.EEXIST
		}
		if errno := n.truncateForOpen(p, flags); errno != 0 {
			return nil, nil, 0, errno
		}
		flags &^= syscall.O_TRUNC
		err = create()
	} else {
		op := &nsOp{kind: opCreate, from: n.child(name), to: n.child(name), pending: map[uint64]bool{n.dirIno(): true}}
		err = n.j.Names(op, "", create)
	}
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	return ch, wrapFile(n.j, fh, flags), fuseFlags | fuse.FOPEN_KEEP_CACHE, 0
}

// Open and Create keep the kernel's page cache of the file (FOPEN_KEEP_CACHE; see main.go,
// ExplicitDataCacheControl): every change to a file goes through the kernel while it is mounted,
// so what it caches is never older than the backing file.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.dead() {
		return nil, 0, syscall.EIO
	}
	if errno := n.truncateForOpen(n.abs(), flags); errno != 0 {
		return nil, 0, errno
	}
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, readable(flags)&^syscall.O_TRUNC)
	if errno != 0 {
		return nil, 0, errno
	}
	return wrapFile(n.j, fh, flags), fuseFlags | fuse.FOPEN_KEEP_CACHE, 0
}

// readable turns write-only into read-write: the journal reads what a write overwrites.
func readable(flags uint32) uint32 {
	if flags&syscall.O_ACCMODE == syscall.O_WRONLY {
		return flags&^syscall.O_ACCMODE | syscall.O_RDWR
	}
	return flags
}

// truncateForOpen handles O_TRUNC of an existing file through the journal.
func (n *node) truncateForOpen(path string, flags uint32) syscall.Errno {
	if flags&syscall.O_TRUNC == 0 || flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return 0
	}
	fd, err := syscall.Open(path, syscall.O_RDWR, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	return fs.ToErrno(n.j.Resize(fd, func() error { return syscall.Ftruncate(fd, 0) }, 0, st.Size))
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	var ch *fs.Inode
	op := &nsOp{kind: opMkdir, from: n.child(name), to: n.child(name), pending: map[uint64]bool{n.dirIno(): true}}
	err := n.j.Names(op, "", func() error {
		var errno syscall.Errno
		ch, errno = n.LoopbackNode.Mkdir(ctx, name, mode, out)
		return errnoOrNil(errno)
	})
	return ch, fs.ToErrno(err)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	op := &nsOp{kind: opRmdir, from: n.child(name), to: n.child(name), pending: map[uint64]bool{n.dirIno(): true}}
	return fs.ToErrno(n.j.Names(op, "", func() error { return errnoOrNil(n.LoopbackNode.Rmdir(ctx, name)) }))
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	p := filepath.Join(n.abs(), name)
	op := &nsOp{kind: opUnlink, from: n.child(name), to: n.child(name), pending: map[uint64]bool{n.dirIno(): true}}
	// The file now has a second name in the trash: dropping this one is the unlink.
	return fs.ToErrno(n.j.Names(op, p, func() error { return syscall.Unlink(p) }))
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled
	}
	target := filepath.Join(np.abs(), newName)
	replaced := ""
	if _, err := osLstat(target); err == nil {
		if flags&unix.RENAME_NOREPLACE != 0 {
			return syscall.EEXIST
		}
		replaced = target
	}
	op := &nsOp{kind: opRename, from: n.child(name), to: np.child(newName),
		pending: map[uint64]bool{n.dirIno(): true, np.dirIno(): true}}
	return fs.ToErrno(n.j.Names(op, replaced, func() error {
		return errnoOrNil(n.LoopbackNode.Rename(ctx, name, newParent, newName, 0))
	}))
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	var ch *fs.Inode
	op := &nsOp{kind: opLink, from: n.child(name), to: n.child(name), pending: map[uint64]bool{n.dirIno(): true}}
	err := n.j.Names(op, "", func() error {
		var errno syscall.Errno
		ch, errno = n.LoopbackNode.Link(ctx, target, name, out)
		return errnoOrNil(errno)
	})
	return ch, fs.ToErrno(err)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	var ch *fs.Inode
	op := &nsOp{kind: opSymlink, from: n.child(name), to: n.child(name), pending: map[uint64]bool{n.dirIno(): true}}
	err := n.j.Names(op, "", func() error {
		var errno syscall.Errno
		ch, errno = n.LoopbackNode.Symlink(ctx, target, name, out)
		return errnoOrNil(errno)
	})
	return ch, fs.ToErrno(err)
}

// Mknod, O_TMPFILE and copy_file_range are not modelled: refused (the kernel falls back to
// read and write for copy_file_range).
func (n *node) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (n *node) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.dead() {
		return syscall.EIO
	}
	if size, ok := in.GetSize(); ok {
		var errno syscall.Errno
		if h, ok := f.(*file); ok && h != nil {
			errno = h.truncate(int64(size))
		} else {
			errno = n.truncatePath(int64(size))
		}
		if errno != 0 {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	// Mode, owner and times are metadata this model keeps as they are (durable at once).
	return n.LoopbackNode.Setattr(ctx, nil, in, out)
}

func (n *node) truncatePath(size int64) syscall.Errno {
	fd, err := syscall.Open(n.abs(), syscall.O_RDWR, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return (&file{j: n.j, fd: fd}).truncate(size)
}

// Fsync of a file is handled by its handle; this is reached for directories without one.
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	syncCounts.add(n)
	if h, ok := f.(*file); ok {
		return h.Fsync(ctx, flags)
	}
	if n.IsDir() {
		if errno := syncWait(ctx, false); errno != 0 {
			return errno
		}
		return fs.ToErrno(n.j.SyncDir(n.dirIno()))
	}
	return syscall.EBADF
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.dead() {
		return nil, 0, syscall.EIO
	}
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{inner: fh, n: n}, fuseFlags, 0
}

// dir is a directory handle whose fsync goes to the journal.
type dir struct {
	inner fs.FileHandle
	n     *node
}

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	syncCounts.add(d.n)
	if errno := syncWait(ctx, false); errno != 0 {
		return errno
	}
	return fs.ToErrno(d.n.j.SyncDir(d.n.dirIno()))
}

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if r, ok := d.inner.(fs.FileReaddirenter); ok {
		return r.Readdirent(ctx)
	}
	return nil, syscall.ENOTSUP
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.inner.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func errnoOrNil(errno syscall.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

func osLstat(p string) (syscall.Stat_t, error) {
	var st syscall.Stat_t
	err := syscall.Lstat(p, &st)
	return st, err
}
