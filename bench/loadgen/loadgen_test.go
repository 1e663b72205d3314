package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadBodiesParsesLinesAndNamesTheBadOne(t *testing.T) {
	good := "# comment\n3\t/v1/txs\t" + base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)) + "\n\n0\t/\tAA==\n"
	reqs, err := ReadBodies(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Lane != 3 || reqs[0].Path != "/v1/txs" || string(reqs[0].Body) != `{"a":1}` ||
		reqs[1].Lane != 0 || len(reqs[1].Body) != 1 {
		t.Fatalf("parsed %+v", reqs)
	}
	for _, bad := range []struct{ text, want string }{
		{"1\t/x\n", "line 1: want 3"},
		{"-1\t/x\tAA==\n", "line 1: lane"},
		{"# c\nx\t/x\tAA==\n", "line 2: lane"},
		{"1\tx\tAA==\n", "does not start with /"},
		{"1\t/x\t%%%\n", "not base64"},
	} {
		_, err := ReadBodies(strings.NewReader(bad.text))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: got %v, want %q", bad.text, err, bad.want)
		}
	}
}

func TestResultCodeReadsLedgerAndJSONRPCErrors(t *testing.T) {
	cases := []struct {
		status int
		body   string
		code   int
		text   string
	}{
		{202, `{"tx_hash":"ab","status":"pending"}`, 0, ""},
		{409, `{"error":{"code":302,"name":"NONCE_OUT_OF_ORDER","message":"nonce 5, expected 3"}}`, 302,
			"NONCE_OUT_OF_ORDER: nonce 5, expected 3"},
		{200, `{"jsonrpc":"2.0","id":1,"result":"0xab"}`, 0, ""},
		{200, `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}`, -32000, "nonce too low"},
		{500, `Internal Server Error`, CodeUnreadable, "HTTP 500: Internal Server Error"},
		{200, `{"result":"the word \"error\" in a result"}`, 0, ""},
	}
	for _, c := range cases {
		code, text := ResultCode(c.status, []byte(c.body))
		if code != c.code || text != c.text {
			t.Errorf("%d %s: got (%d, %q), want (%d, %q)", c.status, c.body, code, text, c.code, c.text)
		}
	}
}

func TestSchedulerKeepsEachLaneInOrderAtDepthOne(t *testing.T) {
	var reqs []Request
	for i := 0; i < 300; i++ {
		reqs = append(reqs, Request{Lane: i % 7, Path: "/"})
	}
	ids := make([]int, len(reqs))
	for i := range ids {
		ids[i] = i
	}
	s := NewScheduler(reqs, ids, 1)
	var mu sync.Mutex
	inflight := map[int]bool{}
	last := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, li, ok := s.Take()
				if !ok {
					return
				}
				lane := reqs[id].Lane
				mu.Lock()
				if inflight[lane] {
					t.Errorf("lane %d has two requests in flight", lane)
				}
				if prev, seen := last[lane]; seen && prev >= id {
					t.Errorf("lane %d: request %d after %d", lane, id, prev)
				}
				inflight[lane], last[lane] = true, id
				mu.Unlock()
				time.Sleep(50 * time.Microsecond)
				mu.Lock()
				inflight[lane] = false
				mu.Unlock()
				s.Done(li)
			}
		}()
	}
	wg.Wait()
	if s.Lanes() != 7 || s.dispatched != 300 {
		t.Fatalf("lanes %d dispatched %d", s.Lanes(), s.dispatched)
	}
}

func TestSchedulerLetsDepthRequestsOfALaneRace(t *testing.T) {
	reqs := make([]Request, 40) // one lane
	ids := make([]int, 40)
	for i := range ids {
		ids[i] = i
	}
	s := NewScheduler(reqs, ids, 4)
	var taken []int
	for i := 0; i < 4; i++ {
		id, _, ok := s.Take()
		if !ok {
			t.Fatal("ran out")
		}
		taken = append(taken, id)
	}
	if fmt.Sprint(taken) != "[0 1 2 3]" {
		t.Fatalf("took %v", taken)
	}
	got := make(chan int)
	go func() { id, _, _ := s.Take(); got <- id }()
	select {
	case id := <-got:
		t.Fatalf("a fifth request (%d) left with four in flight", id)
	case <-time.After(50 * time.Millisecond):
	}
	s.Done(0)
	if id := <-got; id != 4 {
		t.Fatalf("next was %d", id)
	}
}

// A server that records the order bodies arrive in, refusing out-of-order "nonces" with code 302.
func orderServer(t *testing.T) (*httptest.Server, func() map[string][]int) {
	var mu sync.Mutex
	arrived := map[string][]int{}
	next := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var tx struct {
			Signer string `json:"signer"`
			Nonce  int    `json:"nonce"`
		}
		if err := json.Unmarshal(body, &tx); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		time.Sleep(200 * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		arrived[tx.Signer] = append(arrived[tx.Signer], tx.Nonce)
		if tx.Nonce != next[tx.Signer]+1 {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"error":{"code":302,"name":"NONCE_OUT_OF_ORDER","message":"want %d"}}`, next[tx.Signer]+1)
			return
		}
		next[tx.Signer] = tx.Nonce
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"status":"pending"}`)
	}))
	return srv, func() map[string][]int {
		mu.Lock()
		defer mu.Unlock()
		return arrived
	}
}

func writeBodies(t *testing.T, signers, each int) string {
	path := filepath.Join(t.TempDir(), "bodies.tsv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for n := 1; n <= each; n++ {
		for s := 0; s < signers; s++ {
			body := fmt.Sprintf(`{"signer":"s%d","nonce":%d}`, s, n)
			fmt.Fprintf(w, "%d\t/v1/txs\t%s\n", s, base64.StdEncoding.EncodeToString([]byte(body)))
		}
	}
	w.Flush()
	f.Close()
	return path
}

func TestRunSendsEachSignerInNonceOrderAndRecordsEveryRequest(t *testing.T) {
	srv, arrived := orderServer(t)
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "records.jsonl")
	s, err := Run(Config{URL: srv.URL, Bodies: writeBodies(t, 5, 40), Out: out, Connections: 8, LaneDepth: 1,
		Shard: "0/1", Timeout: 5 * time.Second, MaxSeconds: 30, ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent != 200 || s.Unsent != 0 || s.Codes["0"] != 200 || s.Statuses["202"] != 200 || s.Lanes != 5 {
		t.Fatalf("summary %+v", s)
	}
	for signer, nonces := range arrived() {
		for i, n := range nonces {
			if n != i+1 {
				t.Fatalf("%s arrived out of order: %v", signer, nonces)
			}
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 200 {
		t.Fatalf("%d result lines", len(lines))
	}
	var rec struct{ I, T, D, S, C int64 }
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.T < s.StartNs || rec.D <= 0 || rec.S != 202 {
		t.Fatalf("record %s: %+v %v", lines[0], rec, err)
	}
	if s.CPUUserS+s.CPUSysS <= 0 {
		t.Fatalf("no CPU time recorded: %+v", s)
	}
}

func TestRunWithDeepLanesCountsRefusalsByCode(t *testing.T) {
	srv, _ := orderServer(t)
	defer srv.Close()
	s, err := Run(Config{URL: srv.URL, Bodies: writeBodies(t, 2, 60), Connections: 16, LaneDepth: 0,
		Shard: "0/1", Timeout: 5 * time.Second, MaxSeconds: 30, ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent != 120 || s.Codes["0"]+s.Codes["302"] != 120 || s.Codes["302"] == 0 {
		t.Fatalf("with 16 connections racing 2 signers some nonces must arrive out of order: %+v", s.Codes)
	}
	if !strings.HasPrefix(s.Samples["302"], "NONCE_OUT_OF_ORDER") {
		t.Fatalf("samples %v", s.Samples)
	}
}

func TestRunPacesAndShards(t *testing.T) {
	srv, arrived := orderServer(t)
	defer srv.Close()
	s, err := Run(Config{URL: srv.URL, Bodies: writeBodies(t, 4, 25), Connections: 4, LaneDepth: 1,
		Rate: 200, Shard: "1/2", Timeout: 5 * time.Second, MaxSeconds: 30, ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent != 50 || s.Lanes != 2 || len(arrived()) != 2 || arrived()["s1"] == nil || arrived()["s3"] == nil {
		t.Fatalf("shard 1/2 of lanes 0-3 is lanes 1 and 3: %+v %v", s, arrived())
	}
	if s.ElapsedS < 0.2 || s.SentPerS > 260 { // 50 requests at 200/s take about 0.25 s
		t.Fatalf("not paced: %.3f s, %.0f/s", s.ElapsedS, s.SentPerS)
	}
}

func TestRunStopsAtItsDeadlineAndRefusesRemoteTargets(t *testing.T) {
	srv, _ := orderServer(t)
	defer srv.Close()
	s, err := Run(Config{URL: srv.URL, Bodies: writeBodies(t, 1, 400), Connections: 1, LaneDepth: 1,
		Rate: 100, Shard: "0/1", Timeout: time.Second, MaxSeconds: 0.3, ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.StoppedEarly || s.Sent == 0 || s.Sent > 40 || s.Unsent != 400-s.Sent {
		t.Fatalf("summary %+v", s)
	}
	for _, u := range []string{"http://10.0.0.1:80", "http://example.org", "https://127.0.0.1:1", "127.0.0.1:80"} {
		if _, err := Run(Config{URL: u, Bodies: "x", Connections: 1, Shard: "0/1", MaxSeconds: 1}); err == nil {
			t.Errorf("%s was accepted", u)
		}
	}
	if _, err := Run(Config{URL: srv.URL, Bodies: "x", Connections: 1, Shard: "2/2", MaxSeconds: 1}); err == nil ||
		!strings.Contains(err.Error(), "--shard") {
		t.Errorf("bad shard: %v", err)
	}
}

func TestRunRecordsTransportFailures(t *testing.T) {
	srv, _ := orderServer(t)
	url := srv.URL
	srv.Close() // nothing listens there any more
	s, err := Run(Config{URL: url, Bodies: writeBodies(t, 1, 3), Connections: 1, LaneDepth: 1, Shard: "0/1",
		Timeout: time.Second, MaxSeconds: 10, ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent != 3 || s.Codes["-2"] != 3 || s.Statuses["0"] != 3 || s.Samples["-2"] == "" {
		t.Fatalf("summary %+v", s)
	}
}
