// Command gencsv writes a contact CSV of distinct Brazilian mobile numbers in the
// formats real exports mix, and beside it the same rows already normalised to E.164,
// for the import benchmark and its sqlite3 baseline.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "data rows to write")
	out := flag.String("out", "contacts.csv", "CSV in mixed formats")
	norm := flag.String("normalized", "contacts-e164.csv", "the same rows with E.164 numbers")
	flag.Parse()
	if err := write(*rows, *out, *norm); err != nil {
		log.Fatal(err)
	}
}

var areaCodes = []int{11, 21, 31, 41, 47, 51, 61, 62, 71, 81, 85, 91, 92, 98}
var names = []string{"Ana Souza", "João Silva", "Maria Oliveira", "José Santos", "Conceição Lima", "Antônio Costa"}

func write(rows int, outPath, normPath string) error {
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer out.Close()
	norm, err := os.Create(normPath)
	if err != nil {
		return err
	}
	defer norm.Close()
	w, n := bufio.NewWriterSize(out, 1<<20), bufio.NewWriterSize(norm, 1<<20)
	fmt.Fprint(w, "nome;telefone;plano;valor\r\n")
	fmt.Fprint(n, "name,phone,plano,valor\n")
	perArea := rows/len(areaCodes) + 1
	for i := range rows {
		area := areaCodes[i/perArea]
		sub := 960000000 + i%perArea // 9 digits, a valid mobile range
		p1, p2 := sub/10000, sub%10000
		name := names[i%len(names)]
		plan := i % 5
		switch i % 4 {
		case 0:
			fmt.Fprintf(w, "%s;(%d) %05d-%04d;Plano %d;\"%d,90\"\r\n", name, area, p1, p2, plan, 79+plan*20)
		case 1:
			fmt.Fprintf(w, "%s;+55 %d %05d-%04d;Plano %d;\"%d,90\"\r\n", name, area, p1, p2, plan, 79+plan*20)
		case 2:
			fmt.Fprintf(w, "%s;55%d%09d;Plano %d;\"%d,90\"\r\n", name, area, sub, plan, 79+plan*20)
		default:
			fmt.Fprintf(w, "%s;0%d %05d-%04d;Plano %d;\"%d,90\"\r\n", name, area, p1, p2, plan, 79+plan*20)
		}
		fmt.Fprintf(n, "%s,+55%d%09d,Plano %d,\"%d,90\"\n", name, area, sub, plan, 79+plan*20)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return n.Flush()
}
