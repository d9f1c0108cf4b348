package main

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// file is an open file whose writes, size changes and syncs go through the journal. It
// deliberately does not offer a passthrough descriptor: with FUSE passthrough the kernel would
// do the I/O on the backing file itself, out of the journal's sight.
type file struct {
	j     *Journal
	inner *fs.LoopbackFile
	fd    int
	// Opened with O_DSYNC or O_SYNC: every write is durable when it returns.
	sync bool
	// A synchronous write was made and the fsync request the kernel sends after it (to
	// implement O_DSYNC) has not come yet.
	kernelSync atomic.Bool
	// The ranges synchronous writes wrote that the kernel's fsync after them has not made
	// durable yet: a power cut before the write call returns may lose them, as on a disk.
	pendingMu sync.Mutex
	pending   [][2]int64
}

var (
	_ = (fs.FileReader)((*file)(nil))
	_ = (fs.FileWriter)((*file)(nil))
	_ = (fs.FileFsyncer)((*file)(nil))
	_ = (fs.FileFlusher)((*file)(nil))
	_ = (fs.FileReleaser)((*file)(nil))
	_ = (fs.FileGetattrer)((*file)(nil))
	_ = (fs.FileLseeker)((*file)(nil))
	_ = (fs.FileAllocater)((*file)(nil))
)

func wrapFile(j *Journal, fh fs.FileHandle, flags uint32) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	fd, _ := lf.PassthroughFd()
	return &file{j: j, inner: lf, fd: fd, sync: flags&syncFlags != 0}
}

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if f.j.Dead() {
		return nil, syscall.EIO
	}
	f.j.reads.Add(1)
	hungRead()
	slowRead(ctx)
	return f.inner.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := f.j.Write(f.fd, data, off, f.sync)
	if f.sync && err == nil && n > 0 {
		f.pendingMu.Lock()
		f.pending = append(f.pending, [2]int64{off, int64(n)})
		f.pendingMu.Unlock()
		f.kernelSync.Store(true)
	}
	return uint32(max(n, 0)), fs.ToErrno(err)
}

// Fsync (fsync and fdatasync alike) makes the file's data and size durable. The backing file
// is not synced: durability is what the journal says, not the backing disk's.
//
// After each write on an O_DSYNC/O_SYNC descriptor the kernel sends an fsync of that descriptor
// (FUSE does not pass its range) before the write call returns: that one stands for the write
// only, whose pages it makes durable, and not for the file's other unsynced pages, which Linux
// would not write either. Until it is done (a slow or hung disk holds it), a cut loses them.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	// A slow disk is slow once per sync: for an O_DSYNC write, at this fsync the kernel sends
	// after the write call (once per call, however many FUSE writes it took).
	errno := syncWait(ctx, f.sync && f.kernelSync.Load())
	if f.sync && errno != syscall.EINTR && f.kernelSync.Swap(false) {
		f.pendingMu.Lock()
		ranges := f.pending
		f.pending = nil
		f.pendingMu.Unlock()
		if errno != 0 {
			return errno // the write call fails; its pages stay unsynced
		}
		return fs.ToErrno(f.j.SyncRanges(f.fd, ranges))
	}
	if errno != 0 {
		return errno // EINTR: the caller is gone (killed); nothing more became durable
	}
	return fs.ToErrno(f.j.SyncFile(f.fd))
}

func (f *file) Flush(ctx context.Context) syscall.Errno { return f.inner.Flush(ctx) }

func (f *file) Release(ctx context.Context) syscall.Errno { return f.inner.Release(ctx) }

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.inner.Getattr(ctx, out)
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.inner.Lseek(ctx, off, whence)
}

// Allocate: a plain or keep-size fallocate changes no bytes below the end; punching or zeroing
// a range does, so that range is saved first.
func (f *file) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	from, to := int64(off), int64(off)
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0 {
		var st syscall.Stat_t
		if err := syscall.Fstat(f.fd, &st); err != nil {
			return fs.ToErrno(err)
		}
		to = int64(off + size)
		if mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0 {
			to = st.Size // everything after the range moves
		}
	}
	return fs.ToErrno(f.j.Resize(f.fd, func() error {
		return unix.Fallocate(f.fd, mode, int64(off), int64(size))
	}, from, to))
}

// truncate sets the size, saving the bytes a shrink destroys.
func (f *file) truncate(size int64) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	return fs.ToErrno(f.j.Resize(f.fd, func() error { return syscall.Ftruncate(f.fd, size) }, size, st.Size))
}
