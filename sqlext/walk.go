package sqlext

import "google.golang.org/protobuf/reflect/protoreflect"

// Walk calls f on m, a node of a parse tree (ParseTree), and every message
// below it, depth first, until f returns false; it reports whether the walk
// went to the end. It reads the tree only.
func Walk(m protoreflect.Message, f func(protoreflect.Message) bool) bool {
	if !f(m) {
		return false
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := 0; i < list.Len() && ok; i++ {
				ok = Walk(list.Get(i).Message(), f)
			}
		case fd.IsMap():
		case fd.Message() != nil:
			ok = Walk(v.Message(), f)
		}
		return ok
	})
	return ok
}
