// powerlossfs: a FUSE filesystem that loses what was not synced when the power is cut, for
// kvstore's power-loss tests (like the LazyFS filesystem etcd's robustness tests use).
//
// Usage: powerlossfs -store DIR -mount DIR
//
// It exposes DIR/root (the "disk", created when missing) at the mount point and keeps the trash
// in DIR/trash (unlinked files that may come back), so both must be on one filesystem. Commands,
// one a line on standard input, each answered by one JSON line on standard output:
//
//	cut SEED KEEP   power cut: everything fails with EIO from now on, and the unsynced changes are
//	                taken back (KEEP 0: all of them; 0 < KEEP <= 1: each page write survives with
//	                that probability and a random prefix of the name changes survives; seeded)
//	sync            make everything durable (like a clean shutdown), e.g. after setting up
//	stats           counters: writes, reads (those the page cache did not answer), O_DSYNC writes,
//	                fsyncs, directory fsyncs, unsynced pages/ops, operations the hang holds now
//	syncs           syncs by path (relative to the root, as named when each came; "." is the
//	                root): fsync and fdatasync of a file or directory, and each write call on an
//	                O_DSYNC descriptor (however many FUSE writes it took), counted as they come,
//	                before `slow` or `hang` holds them. A test tells from it how many device flushes
//	                a program asked of one file, e.g. one per write-ahead log group
//	slow MS         every sync (fsync, fdatasync, each write call on an O_DSYNC descriptor) waits MS
//	                before it makes anything durable (an O_DSYNC write is durable once its call
//	                returns: a cut during the wait takes it back)
//	hang            every sync from now on (and every one waiting) blocks until `resume`: a disk
//	                whose I/O never completes (a dead network volume); reads and unsynced writes go on
//	hang reads      as `hang`, and every read the page cache does not answer blocks too, until
//	                `resume`, whatever signal its caller gets short of a fatal one (a hard-mounted
//	                dead volume: a page fault on such a disk holds the faulting thread)
//	hang lookups    as `hang reads`, and every name lookup the kernel's cache does not answer blocks
//	                too (a stat or an open of a file not looked up since the mount: the directory's
//	                blocks are read from the dead volume)
//	resume          the hung syncs and reads go on (then wait as `slow` says, as every sync does)
//	slowread MS     every read the page cache does not answer waits MS first (a cold network volume:
//	                a start-up that reads the whole store takes long); 0: fast again
//	errors on|off   while on, every sync fails with EIO and makes nothing durable (fsync,
//	                fdatasync, a directory's, each write call on an O_DSYNC descriptor, which
//	                then returns EIO): a disk whose writes fail; reads and unsynced writes go on
//	errors dsync    only the write calls on O_DSYNC descriptors fail so (fsync and fdatasync
//	                work): LMDB then fails writing its meta page after syncing its data
//
// The first line it prints is {"ready":true,...} once mounted. End of input, SIGTERM or SIGINT
// unmounts (lazily when busy) and exits; after a cut, a new process on the same store is the
// machine coming back.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	store := flag.String("store", "", "directory holding the disk (root/) and the trash (trash/)")
	mnt := flag.String("mount", "", "mount point")
	debug := flag.Bool("debug", false, "log every FUSE request")
	flag.Parse()
	if *store == "" || *mnt == "" {
		log.Fatal("powerlossfs: -store and -mount are required")
	}
	root := filepath.Join(*store, "root")
	trash := filepath.Join(*store, "trash")
	for _, d := range []string{root, trash} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			log.Fatalf("powerlossfs: %v", err)
		}
	}
	j := NewJournal(root, trash)
	rootNode, err := newRoot(j, root)
	if err != nil {
		log.Fatalf("powerlossfs: %v", err)
	}
	zero := time.Duration(0)
	server, err := fs.Mount(*mnt, rootNode, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true, // root: mount(2) itself, no fusermount needed
			FsName:            "powerlossfs",
			Name:              "powerlossfs",
			DisableXAttrs:     true,
			Debug:             *debug,
			// No writeback cache (it is off unless asked for) and no passthrough: every write
			// reaches this process when it is made, and every fsync too.
			DisabledCapabilities: fuse.CAP_PASSTHROUGH | fuse.CAP_WRITEBACK_CACHE,
			// The kernel's page cache is the file's content, as on a disk filesystem: it is not
			// dropped when a stat sees a new mtime (automatic invalidation) nor at an open
			// (FOPEN_KEEP_CACHE in node.go). Dropped, a page is read back from the backing file,
			// and a write the kernel has copied into the cache but not yet sent here comes back
			// as the page's old bytes and stays cached: a process reading through mmap then sees
			// a page as it was before a write it made. LMDB, which reads its pages through mmap
			// and writes them with pwrite, wrote such stale pages back into its trees
			// (docs/storage.md, power-loss testing).
			ExplicitDataCacheControl: true,
		},
		NegativeTimeout: &zero,
	})
	if err != nil {
		log.Fatalf("powerlossfs: mount %s: %v", *mnt, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := syscall.Unmount(*mnt, 0); err != nil {
				// Busy (a process still has files open): detach it, as `umount -l` does.
				_ = syscall.Unmount(*mnt, syscall.MNT_DETACH)
			}
			// Exiting closes /dev/fuse, which ends the connection at once. (go-fuse's Unmount
			// would wait for that instead, forever if another mount namespace, such as one
			// `ip netns exec` made meanwhile, holds a copy of the mount.)
			os.Exit(0)
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		stop()
	}()
	out := bufio.NewWriter(os.Stdout)
	reply := func(s string) {
		fmt.Fprintln(out, s)
		out.Flush()
	}
	reply(mustJSON(map[string]any{"ready": true, "mount": *mnt, "root": root, "pid": os.Getpid()}))
	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			reply(command(j, strings.Fields(in.Text())))
		}
		stop()
	}()
	server.Wait()
	stop()
}

// syncDelay is how long every sync waits before it is done (the `slow` command): fsync and
// fdatasync of files and directories, and each write call on an O_DSYNC/O_SYNC descriptor (at
// the fsync the kernel sends after it). A slow disk (a degraded RAID, a throttled cloud volume)
// looks like this to the program on it.
var syncDelay atomic.Int64

// readDelay is how long every read that reaches the filesystem waits first (the `slowread`
// command); reads the kernel's page cache answers never come here.
var readDelay atomic.Int64

// slowRead waits readDelay (or until the request is interrupted).
func slowRead(ctx context.Context) {
	wait(ctx, time.Duration(readDelay.Load()))
}

// wait waits `d` (0 or less: not at all): true, or false when the request is interrupted first.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// syncCounts counts the syncs of each path (the `syncs` command).
var syncCounts = pathCounts{n: map[string]int64{}}

type pathCounts struct {
	mu sync.Mutex
	n  map[string]int64
}

// add counts one sync of the file or directory of node n (by its current name; a file no longer
// linked anywhere counts as "(unlinked)").
func (c *pathCounts) add(n *node) {
	p := n.rel()
	switch {
	case p == "":
		p = "."
	case strings.HasPrefix(p, ".go-fuse."): // go-fuse's name for an orphaned inode
		p = "(unlinked)"
	}
	c.mu.Lock()
	c.n[p]++
	c.mu.Unlock()
}

func (c *pathCounts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.n))
	for p, k := range c.n {
		out[p] = k
	}
	return out
}

// syncErrors: 0 off; 1 every sync fails with EIO; 2 only O_DSYNC write calls do (`errors`).
var syncErrors atomic.Int32

// hung, while not nil, is closed by `resume`: every sync waits for that first (the `hang` command).
var hung atomic.Pointer[chan struct{}]

// readsHung: while the disk hangs, reads wait for `resume` too (`hang reads`).
var readsHung atomic.Bool

// lookupsHung: while the disk hangs, name lookups wait for `resume` too (`hang lookups`).
var lookupsHung atomic.Bool

// held counts the operations waiting for `resume` now (reads, syncs, lookups): `stats`' held. A
// test that hangs the disk waits for one held before it acts; a count of those that came after
// the hang cannot tell, since one that came just before the count was read may be held already
// (and the reader, waiting for it, asks nothing more).
var held atomic.Int64

// holdUntilResumed waits at `gate` until `resume`, counted in `held` meanwhile.
func holdUntilResumed(gate *chan struct{}) {
	held.Add(1)
	defer held.Add(-1)
	<-*gate
}

// hungLookup waits, while the disk hangs with `hang lookups`, until `resume` (as hungRead).
func hungLookup() {
	if gate := hung.Load(); gate != nil && lookupsHung.Load() {
		holdUntilResumed(gate)
	}
}

// hungRead waits, while the disk hangs with `hang reads`, until `resume`. An interrupt (a signal
// to the reader) does not end the wait: a read of a dead hard-mounted volume ends only with the
// reader killed (the kernel stops waiting then), as a page fault there does.
func hungRead() {
	if gate := hung.Load(); gate != nil && readsHung.Load() {
		holdUntilResumed(gate)
	}
}

// syncWait waits as slowSync does, then says how the sync ends: 0 to go on with it, EINTR when
// the request was interrupted meanwhile, EIO while `errors` is on (nothing becomes durable).
func syncWait(ctx context.Context, dsync bool) syscall.Errno {
	if !slowSync(ctx) {
		return syscall.EINTR
	}
	if e := syncErrors.Load(); e == 1 || (e == 2 && dsync) {
		return syscall.EIO
	}
	return 0
}

// slowSync waits while the disk hangs, then syncDelay; false when the request was interrupted
// meanwhile (its caller killed): the sync did not happen.
func slowSync(ctx context.Context) bool {
	if gate := hung.Load(); gate != nil {
		held.Add(1)
		select {
		case <-*gate:
			held.Add(-1)
		case <-ctx.Done():
			held.Add(-1)
			return false
		}
	}
	return wait(ctx, time.Duration(syncDelay.Load()))
}

// setDelay sets `d` from the command `args` (NAME MS) and answers it.
func setDelay(d *atomic.Int64, args []string) string {
	if len(args) != 2 {
		return `{"error":"usage: ` + args[0] + ` MS"}`
	}
	ms, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || ms < 0 {
		return `{"error":"` + args[0] + `: MS is a whole number of milliseconds >= 0"}`
	}
	d.Store(ms * int64(time.Millisecond))
	return `{"ok":true}`
}

func command(j *Journal, args []string) string {
	if len(args) == 0 {
		return `{"error":"empty command"}`
	}
	switch args[0] {
	case "cut":
		if len(args) != 3 {
			return `{"error":"usage: cut SEED KEEP"}`
		}
		seed, err1 := strconv.ParseInt(args[1], 10, 64)
		keep, err2 := strconv.ParseFloat(args[2], 64)
		if err1 != nil || err2 != nil || keep < 0 || keep > 1 {
			return `{"error":"cut: SEED is an integer, KEEP a probability in [0, 1]"}`
		}
		return mustJSON(j.Cut(seed, keep))
	case "sync":
		j.SyncAll()
		return `{"ok":true}`
	case "stats":
		st := j.Stats()
		st.Held = held.Load()
		return mustJSON(st)
	case "syncs":
		return mustJSON(syncCounts.snapshot())
	case "slow":
		return setDelay(&syncDelay, args)
	case "slowread":
		return setDelay(&readDelay, args)
	case "errors":
		modes := map[string]int32{"off": 0, "on": 1, "dsync": 2}
		mode, ok := modes[args[min(1, len(args)-1)]]
		if len(args) != 2 || !ok {
			return `{"error":"usage: errors on|off|dsync"}`
		}
		syncErrors.Store(mode)
		return `{"ok":true}`
	case "hang":
		if len(args) > 2 || (len(args) == 2 && args[1] != "reads" && args[1] != "lookups") {
			return `{"error":"usage: hang [reads|lookups]"}`
		}
		if len(args) == 2 {
			readsHung.Store(true)
			lookupsHung.Store(args[1] == "lookups")
		}
		gate := make(chan struct{})
		hung.CompareAndSwap(nil, &gate)
		return `{"ok":true}`
	case "resume":
		readsHung.Store(false)
		lookupsHung.Store(false)
		if gate := hung.Swap(nil); gate != nil {
			close(*gate)
		}
		return `{"ok":true}`
	}
	return mustJSON(map[string]string{"error": "unknown command " + args[0]})
}
