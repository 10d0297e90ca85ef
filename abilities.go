package session

import "io"

// Why this file exists: the Manager, package health and third-party code
// discover what a store can do by type assertion (store.(UserIndex)). A
// wrapper type that declared every optional method and answered
// errors.ErrUnsupported for the ones its inner store lacked made those
// assertions lie: instrument over a store without CompareAndSet turned
// every write into a 503, and instrument, which had no ListUser at all,
// silently disabled "sign out everywhere" on every backend Open selected.
//
// So each wrapper (instrument, NewTiered, NewFailover) keeps all its
// methods on an unexported implementation type, and returns that value
// inside one of the small struct types below. Each struct embeds the
// implementation once as a [wrapperCore] (the abilities every wrapper
// honours always) and again as exactly the optional interfaces the inner
// store or stores honour: a method that is not promoted does not exist,
// so an assertion on the result answers truly. This is the technique of
// github.com/felixge/httpsnoop for http.ResponseWriter. One struct type
// per combination of the four optional abilities: sixteen, one line each.

// wrapperCore is what every wrapper honours whatever it wraps:
//
//   - [Pinger]: a wrapped store that cannot ping counts as reachable while
//     ctx is live, the rule package health applies to any store;
//   - [io.Closer]: a no-op where the wrapper holds nothing;
//   - statsReporter, componenter and activer.
type wrapperCore interface {
	Store
	Pinger
	io.Closer
	statsReporter
	componenter
	activer
	// impl returns the implementation value (*instrumented, *tiered or
	// *failover), for the package's own tests.
	impl() any
}

// wrapperImpl is a wrapper's implementation type: every method, including
// the optional ones, which it may only be asked for when [compose] was
// told its inner stores honour them.
type wrapperImpl interface {
	wrapperCore
	CompareAndSetter
	UserIndex
	Counter
	Cleaner
}

// abilities is a set of optional interfaces, one bit each.
type abilities uint8

const (
	canCAS       abilities = 1 << iota // CompareAndSetter
	canUsers                           // UserIndex
	canCount                           // Counter
	canClean                           // Cleaner
	allAbilities = canCAS | canUsers | canCount | canClean
)

// abilitiesOf returns the optional interfaces s implements.
func abilitiesOf(s Store) abilities {
	var a abilities
	if _, ok := s.(CompareAndSetter); ok {
		a |= canCAS
	}
	if _, ok := s.(UserIndex); ok {
		a |= canUsers
	}
	if _, ok := s.(Counter); ok {
		a |= canCount
	}
	if _, ok := s.(Cleaner); ok {
		a |= canClean
	}
	return a
}

// The sixteen combinations, named after the abilities they add: C
// CompareAndSetter, U UserIndex, N Counter (count), L Cleaner.
type (
	store0 struct{ wrapperCore }
	storeC struct {
		wrapperCore
		CompareAndSetter
	}
	storeU struct {
		wrapperCore
		UserIndex
	}
	storeCU struct {
		wrapperCore
		CompareAndSetter
		UserIndex
	}
	storeN struct {
		wrapperCore
		Counter
	}
	storeCN struct {
		wrapperCore
		CompareAndSetter
		Counter
	}
	storeUN struct {
		wrapperCore
		UserIndex
		Counter
	}
	storeCUN struct {
		wrapperCore
		CompareAndSetter
		UserIndex
		Counter
	}
	storeL struct {
		wrapperCore
		Cleaner
	}
	storeCL struct {
		wrapperCore
		CompareAndSetter
		Cleaner
	}
	storeUL struct {
		wrapperCore
		UserIndex
		Cleaner
	}
	storeCUL struct {
		wrapperCore
		CompareAndSetter
		UserIndex
		Cleaner
	}
	storeNL struct {
		wrapperCore
		Counter
		Cleaner
	}
	storeCNL struct {
		wrapperCore
		CompareAndSetter
		Counter
		Cleaner
	}
	storeUNL struct {
		wrapperCore
		UserIndex
		Counter
		Cleaner
	}
	storeCUNL struct {
		wrapperCore
		CompareAndSetter
		UserIndex
		Counter
		Cleaner
	}
)

// compose returns w as a Store offering exactly the abilities in a, plus
// those of [wrapperCore].
func compose(w wrapperImpl, a abilities) Store {
	switch a & allAbilities {
	case 0:
		return store0{w}
	case canCAS:
		return storeC{w, w}
	case canUsers:
		return storeU{w, w}
	case canCAS | canUsers:
		return storeCU{w, w, w}
	case canCount:
		return storeN{w, w}
	case canCAS | canCount:
		return storeCN{w, w, w}
	case canUsers | canCount:
		return storeUN{w, w, w}
	case canCAS | canUsers | canCount:
		return storeCUN{w, w, w, w}
	case canClean:
		return storeL{w, w}
	case canCAS | canClean:
		return storeCL{w, w, w}
	case canUsers | canClean:
		return storeUL{w, w, w}
	case canCAS | canUsers | canClean:
		return storeCUL{w, w, w, w}
	case canCount | canClean:
		return storeNL{w, w, w}
	case canCAS | canCount | canClean:
		return storeCNL{w, w, w, w}
	case canUsers | canCount | canClean:
		return storeUNL{w, w, w, w}
	default:
		return storeCUNL{w, w, w, w, w}
	}
}
