// Command alloc holds on to 1 MiB blocks, each written to so that its pages
// are really in use, and prints how many MiB it holds after each. Without an
// argument it goes on until memory runs out; with one, it stops and exits 0
// after that many MiB.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	limit := -1
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "alloc: bad MiB count %q\n", os.Args[1])
			os.Exit(2)
		}
		limit = n
	}
	var blocks [][]byte
	for i := 1; limit < 0 || i <= limit; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		blocks = append(blocks, b)
		fmt.Printf("allocated %d MiB\n", i)
	}
	fmt.Printf("done, holding %d blocks\n", len(blocks))
}
