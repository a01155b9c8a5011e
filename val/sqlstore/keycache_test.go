package sqlstore

import (
	"strconv"
	"testing"

	"github.com/ykstack/ykstack/val"
)

// TestKeyCache: the cache holds at most its size, keeps the newest put of
// a key, forgets on drop, and does not hold rows with notes.
func TestKeyCache(t *testing.T) {
	c := newKeyCache(4)
	for i := range 10 {
		c.put(val.KeyState{PublicName: "k" + strconv.Itoa(i), Counter: i})
		if c.len() > 4 {
			t.Fatalf("after %d puts the cache holds %d keys, more than its size 4", i+1, c.len())
		}
	}
	if _, ok := c.get("k9"); !ok {
		t.Fatal("the key put last is not held")
	}
	c.put(val.KeyState{PublicName: "k9", Counter: 99})
	if k, _ := c.get("k9"); k.Counter != 99 || c.len() != 4 {
		t.Fatalf("after a second put: %+v, %d keys; want counter 99, 4 keys", k, c.len())
	}
	c.drop("k9")
	if _, ok := c.get("k9"); ok {
		t.Fatal("a dropped key is still held")
	}
	c.put(val.KeyState{PublicName: "k8", Notes: "spare key"})
	if _, ok := c.get("k8"); ok {
		t.Fatal("a row with notes is held")
	}
	next := advanced(val.KeyState{PublicName: "k1", Active: true, Created: 5, Notes: "n", Counter: 1},
		val.KeyState{PublicName: "k1", Modified: 7, Counter: 2, Use: 3, Low: 4, High: 5, Nonce: "x"})
	want := val.KeyState{PublicName: "k1", Active: true, Created: 5, Notes: "n", Modified: 7, Counter: 2, Use: 3, Low: 4, High: 5, Nonce: "x"}
	if next != want {
		t.Fatalf("advanced = %+v, want %+v", next, want)
	}
}
