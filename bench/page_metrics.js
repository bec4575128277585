// bench/page_load.py reads these from the loaded page: first and largest contentful paint, DOMContentLoaded
// and load, in ms from the start of navigation.
async () => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');
    const lcp = await new Promise(resolve => {
        let last = null;
        new PerformanceObserver(list => { const e = list.getEntries(); last = e[e.length - 1]; })
            .observe({type: 'largest-contentful-paint', buffered: true});
        setTimeout(() => resolve(last ? last.startTime : null), 50);
    });
    return {fcp: fcp ? fcp.startTime : null, lcp, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd};
}
