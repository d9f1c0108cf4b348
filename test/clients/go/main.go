// redis-client-check: runs a fixed script against a Redis-protocol server with go-redis v9 and
// its DEFAULT options (RESP3 via HELLO 3, falling back only as go-redis itself does), printing
// one JSON object of what each step answered. Used by test/integration/redis-clients.test.ts.
//
// Usage: redis-client-check -addr host:port [-password p] -prefix name
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "server address")
	password := flag.String("password", "", "AUTH password")
	prefix := flag.String("prefix", "go", "key prefix")
	flag.Parse()
	out, err := run(*addr, *password, *prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis-client-check:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(out)
}

func run(addr, password, prefix string) (map[string]any, error) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password})
	defer rdb.Close()
	out := map[string]any{}

	hello, err := rdb.Do(ctx, "HELLO").Result()
	if err != nil {
		return nil, fmt.Errorf("HELLO: %w", err)
	}
	if m, ok := hello.(map[any]any); ok {
		out["proto"] = m["proto"]
	} else {
		out["proto"] = fmt.Sprintf("not a map: %T", hello)
	}

	k := func(s string) string { return prefix + ":" + s }
	if err := rdb.Set(ctx, k("a"), "1", 0).Err(); err != nil {
		return nil, fmt.Errorf("SET: %w", err)
	}
	if err := rdb.Set(ctx, k("b"), "2", 0).Err(); err != nil {
		return nil, fmt.Errorf("SET: %w", err)
	}
	get, err := rdb.Get(ctx, k("a")).Result()
	if err != nil {
		return nil, fmt.Errorf("GET: %w", err)
	}
	out["get"] = get
	_, err = rdb.Get(ctx, k("absent")).Result()
	out["getAbsentIsNil"] = err == redis.Nil
	mget, err := rdb.MGet(ctx, k("a"), k("absent"), k("b")).Result()
	if err != nil {
		return nil, fmt.Errorf("MGET: %w", err)
	}
	out["mget"] = mget

	pipe := rdb.Pipeline()
	for i := 0; i < 50; i++ {
		pipe.Set(ctx, k(fmt.Sprintf("p%02d", i)), fmt.Sprint(i), 0)
	}
	last := pipe.Get(ctx, k("p49"))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	out["pipelineLast"] = last.Val()

	var scanned []string
	iter := rdb.Scan(ctx, 0, prefix+":p*", 7).Iterator()
	for iter.Next(ctx) {
		scanned = append(scanned, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("SCAN: %w", err)
	}
	sort.Strings(scanned)
	out["scanned"] = len(scanned)
	out["scanFirst"] = scanned[0]

	tx, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k("tx"), "t", 0)
		p.Get(ctx, k("tx"))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("MULTI/EXEC: %w", err)
	}
	out["txGet"] = tx[1].(*redis.StringCmd).Val()

	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k("aborted"), "t", 0)
		p.Incr(ctx, k("counter"))
		return nil
	})
	out["txAbort"] = errString(err)
	aborted, err := rdb.Exists(ctx, k("aborted"), k("counter")).Result()
	if err != nil {
		return nil, fmt.Errorf("EXISTS: %w", err)
	}
	out["txAbortApplied"] = aborted

	out["setnx"] = errString(rdb.SetNX(ctx, k("a"), "x", 0).Err())

	del, err := rdb.Del(ctx, k("a"), k("b"), k("absent")).Result()
	if err != nil {
		return nil, fmt.Errorf("DEL: %w", err)
	}
	out["del"] = del
	return out, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
